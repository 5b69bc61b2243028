"""Many Dropout → Dense(sigmoid, L2) heads fitted at once in NumPy, each exactly as Keras would.

A head on cached features is logistic regression with input dropout: Dropout(rate) → Dense(1,
sigmoid) with an L2 kernel penalty, binary cross-entropy, Adam, shuffled mini-batches, a fixed
number of epochs. Every fit of the study (the grid, the pretraining ablation, the out-of-fold
folds, the negative control) is such a head, and Keras spent more time tracing a ``tf.function``
per head than fitting it. Here the heads of one call advance together, one mini-batch step for
all heads per iteration (a batched matrix product), with no TensorFlow.

Each head keeps its own random generator (seeded by its task's seed) for the Glorot-uniform
initialisation, the per-epoch shuffle and the dropout masks, its own Adam state and step count:
a head's fit does not depend on which other heads share the call (tested). The maths is Keras':
inverted dropout (keep with probability 1 − rate, scale by 1 / (1 − rate); the keep test
compares a uniform 16-bit draw, so the rate is exact to 1/65536, and exact for 0.5); mean binary
cross-entropy over the batch plus ``l2 · Σ w²``; Adam with Keras' defaults (β₁ 0.9, β₂ 0.999,
ε 1e-7, bias-corrected step size); the cross-entropy is computed from the logits, as Keras 3 on TensorFlow
does for a sigmoid output (no clipping). The history has ``fit``'s meaning: mean training loss and
accuracy over the epoch's batches (training mode), then test loss and accuracy in inference mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam defaults
MAX_CHUNK_BYTES = 256 * 2 ** 20  # training features held at once across a chunk of heads


@dataclass
class HeadTask:
    """One head to fit: standardised training features and labels, optional test set, seed."""

    X_train: np.ndarray
    y_train: np.ndarray
    seed: int
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    kernel0: np.ndarray | None = None  # initial kernel (default: Glorot uniform from the seed)


@dataclass
class HeadFit:
    """A fitted head: Dense kernel (d,), bias, and the per-epoch history."""

    kernel: np.ndarray
    bias: float
    history: pd.DataFrame = field(default_factory=pd.DataFrame)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Inference-mode probabilities (dropout off) for rows of ``X``."""
        return _sigmoid(np.asarray(X, np.float32) @ self.kernel + np.float32(self.bias))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # overflow-free logistic


def _bce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of the sigmoid of the logits ``z``, computed from the logits: Keras 3 on
    TensorFlow does the same for a sigmoid output (it keeps the logits), so nothing is clipped and a
    saturated head still has the gradient ``p − y``."""
    z = z.astype(np.float64)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def _evaluate(kernel, bias, X, y, l2) -> tuple[float, float]:
    if X is None or len(X) == 0:
        return float("nan"), float("nan")
    z = np.asarray(X, np.float32) @ kernel + bias
    p = _sigmoid(z)
    y = np.asarray(y, np.float32)
    return float(_bce(z, y).mean() + l2 * np.sum(kernel.astype(np.float64) ** 2)), float(np.mean((p > 0.5) == y))


def fit_heads(tasks: list[HeadTask], *, epochs: int, batch_size: int, learning_rate: float, dropout: float,
              l2: float) -> list[HeadFit]:
    """Fit one head per task; returns the fits in task order.

    Parameters
    ----------
    tasks : the heads to fit (features already standardised on their training rows)
    epochs, batch_size, learning_rate, dropout, l2 : the profile's ``train`` settings

    Returns
    -------
    list of :class:`HeadFit`, one per task, each the same as if it had been fitted alone.
    """
    out: list[HeadFit] = []
    chunk: list[HeadTask] = []
    size = 0
    for t in tasks:
        nbytes = np.asarray(t.X_train).size * 4
        if chunk and size + nbytes > MAX_CHUNK_BYTES:
            out += _fit_chunk(chunk, epochs, batch_size, learning_rate, dropout, l2)
            chunk, size = [], 0
        chunk.append(t)
        size += nbytes
    if chunk:
        out += _fit_chunk(chunk, epochs, batch_size, learning_rate, dropout, l2)
    return out


def _dropout_mask(gen, rows: int, d: int, keep16: int) -> np.ndarray:
    """A (rows, d) keep mask from ``gen``: one random bit per entry at rate 0.5, else a 16-bit draw."""
    n = rows * d
    if keep16 == 32768:
        return np.unpackbits(np.frombuffer(gen.bytes(-(-n // 8)), np.uint8), count=n).reshape(rows, d)
    return np.frombuffer(gen.bytes(2 * n), np.uint16).reshape(rows, d) < keep16


def _fit_chunk(tasks, epochs, batch_size, lr, rate, l2) -> list[HeadFit]:
    order = sorted(range(len(tasks)), key=lambda k: -len(tasks[k].y_train))  # active heads: a prefix
    tasks = [tasks[k] for k in order]
    K = len(tasks)
    Xs = [np.ascontiguousarray(t.X_train, np.float32) for t in tasks]
    d = Xs[0].shape[1]
    if any(x.ndim != 2 or x.shape[1] != d for x in Xs):
        raise ValueError("stacked heads need one feature dimension per call")
    ys = [np.asarray(t.y_train, np.float32).ravel() for t in tasks]
    ns = np.array([len(y) for y in ys])
    if (ns == 0).any() or any(len(x) != n for x, n in zip(Xs, ns)):
        raise ValueError("every head needs as many training rows as labels, and at least one")
    offsets = np.concatenate([[0], np.cumsum(ns)[:-1]])
    pad = int(ns.sum())  # index of an all-zero row that fills short batches
    big = np.concatenate(Xs + [np.zeros((1, d), np.float32)])
    y_big = np.concatenate(ys + [np.zeros(1, np.float32)])
    gens = [np.random.default_rng(int(t.seed)) for t in tasks]
    limit = np.sqrt(6.0 / (d + 1))  # Glorot uniform, fan_in d, fan_out 1
    W = np.stack([g.uniform(-limit, limit, d) if t.kernel0 is None else np.ravel(t.kernel0)
                  for g, t in zip(gens, tasks)]).astype(np.float32)
    b = np.zeros(K, np.float32)
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros(K, np.float32), np.zeros(K, np.float32)
    keep16 = int(round((1.0 - float(rate)) * 65536))  # keep if a uniform 16-bit draw is below this
    scale = np.float32(65536 / keep16) if keep16 > 0 else np.float32(0.0)
    n_batches = -(-ns // batch_size)
    width = int(n_batches.max()) * batch_size
    n_active = [int((n_batches > s).sum()) for s in range(int(n_batches.max()))]
    histories: list[list[dict]] = [[] for _ in range(K)]
    for epoch in range(1, epochs + 1):
        P = np.full((K, width), pad, np.int64)
        for k in range(K):
            P[k, :ns[k]] = offsets[k] + gens[k].permutation(ns[k])
        V = (P != pad).astype(np.float32)
        loss_sum, correct = np.zeros(K), np.zeros(K)
        for s, A in enumerate(n_active):
            cols = slice(s * batch_size, (s + 1) * batch_size)
            idx, valid = P[:A, cols], V[:A, cols]
            nb = valid.sum(1)
            Xb = big[idx]  # (A, batch, d)
            if rate > 0:  # each head draws its own mask for its own rows (independent of the others)
                for i in range(A):
                    m = int(nb[i])
                    Xb[i, :m] *= _dropout_mask(gens[i], m, d, keep16)
                Xb *= scale
            yb = y_big[idx]
            w, bb = W[:A], b[:A]
            z = np.matmul(Xb, w[:, :, None])[..., 0] + bb[:, None]
            p = _sigmoid(z)
            loss_sum[:A] += (_bce(z, yb) * valid).sum(1) + nb * l2 * np.sum(w.astype(np.float64) ** 2, axis=1)
            correct[:A] += (((p > 0.5) == (yb > 0.5)) * valid).sum(1)
            # gradient of the mean loss with respect to the logits (from-logits cross-entropy: never zero)
            g_z = (p - yb).astype(np.float32) * (valid / nb[:, None])
            gW = np.matmul(g_z[:, None, :], Xb)[:, 0, :]
            gW += np.float32(2 * l2) * w
            gb = g_z.sum(1)
            t = _steps_done(n_batches[:A], epoch, s)
            alpha = (lr * np.sqrt(1 - BETA_2 ** t) / (1 - BETA_1 ** t)).astype(np.float32)
            mW[:A] += (gW - mW[:A]) * np.float32(1 - BETA_1)
            vW[:A] += (gW * gW - vW[:A]) * np.float32(1 - BETA_2)
            w -= alpha[:, None] * mW[:A] / (np.sqrt(vW[:A]) + np.float32(EPSILON))
            mb[:A] += (gb - mb[:A]) * np.float32(1 - BETA_1)
            vb[:A] += (gb * gb - vb[:A]) * np.float32(1 - BETA_2)
            bb -= alpha * mb[:A] / (np.sqrt(vb[:A]) + np.float32(EPSILON))
        for k, task in enumerate(tasks):
            tl, ta = _evaluate(W[k], b[k], task.X_test, task.y_test, l2)
            histories[k].append({"epoch": epoch, "train_loss": float(loss_sum[k] / ns[k]),
                                 "train_accuracy": float(correct[k] / ns[k]), "test_loss": tl, "test_accuracy": ta})
    fits = [HeadFit(W[k].copy(), float(b[k]), pd.DataFrame(histories[k])) for k in range(K)]
    out = [None] * K
    for pos, k in enumerate(order):
        out[k] = fits[pos]
    return out


def _steps_done(n_batches: np.ndarray, epoch: int, s: int) -> np.ndarray:
    """Adam's step count after this update, per head: full epochs so far plus this epoch's steps."""
    return ((epoch - 1) * n_batches + s + 1).astype(np.float64)
