"""Feature standardisation, and the Keras reference fit of one head.

The study fits its heads with :mod:`npc_lib.learn.stacked_heads` (NumPy, many at once);
:func:`fit_head` is the one-at-a-time Keras fit it is tested and benchmarked against.
``keras.Model.fit`` spends most of a small head's time in per-step Python and data-adapter
overhead. Here each epoch (shuffle, mini-batches, dropout, Adam updates with the model's L2
loss) runs inside one ``tf.function``; the history has the same meaning as ``fit``'s: the mean
training loss/accuracy over the epoch's batches (training mode), then loss/accuracy on the
test features in inference mode. No early stopping and no selection on test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def standardise(X: np.ndarray, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise features with the mean and SD of the ``fit_rows`` only (the training images).

    Parameters
    ----------
    X : array (n, d)
    fit_rows : boolean array (n,), the rows whose statistics are used

    Returns
    -------
    (X standardised (n, d), mean (d,), sd (d,)); near-constant features are centred only.
    """
    mean, sd = X[fit_rows].mean(axis=0), X[fit_rows].std(axis=0)
    return apply_standardiser(X, mean, sd), mean, sd


def apply_standardiser(X: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``(X - mean) / sd`` with near-constant features (SD below 1e-6) centred only."""
    return (X - mean) / np.where(sd > 1e-6, sd, 1.0)


def fit_head(model, optimizer, X_train, y_train, X_test, y_test, epochs: int, batch_size: int,
             seed: int) -> pd.DataFrame:
    """Train ``model`` (features → sigmoid probability) and return the per-epoch history."""
    import keras
    import tensorflow as tf

    Xtr = tf.constant(X_train, tf.float32)
    ytr = tf.constant(np.asarray(y_train, np.float32).reshape(-1, 1))
    Xte = tf.constant(X_test, tf.float32)
    yte = tf.constant(np.asarray(y_test, np.float32).reshape(-1, 1))
    n = int(Xtr.shape[0])
    n_batches = -(-n // batch_size)
    variables = model.trainable_variables
    optimizer.build(variables)
    bce = keras.losses.BinaryCrossentropy()
    gen = tf.random.Generator.from_seed(seed)

    def penalty():
        return tf.add_n(model.losses) if model.losses else tf.constant(0.0)

    @tf.function
    def train_epoch():
        perm = tf.argsort(gen.uniform((n,)))
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        for i in tf.range(n_batches):
            idx = perm[i * batch_size: tf.minimum((i + 1) * batch_size, n)]
            xb, yb = tf.gather(Xtr, idx), tf.gather(ytr, idx)
            with tf.GradientTape() as tape:
                p = model(xb, training=True)
                loss = bce(yb, p) + penalty()
            grads = tape.gradient(loss, variables)
            optimizer.apply(grads, variables)
            nb = tf.cast(tf.shape(idx)[0], tf.float32)
            loss_sum += loss * nb
            correct += tf.reduce_sum(tf.cast(tf.equal(tf.cast(p > 0.5, tf.float32), yb), tf.float32))
        return loss_sum / n, correct / n

    @tf.function
    def evaluate(X, y):
        p = model(X, training=False)
        return bce(y, p) + penalty(), tf.reduce_mean(tf.cast(tf.equal(tf.cast(p > 0.5, tf.float32), y), tf.float32))

    rows = []
    for epoch in range(1, epochs + 1):
        tl, ta = train_epoch()
        vl, va = evaluate(Xte, yte) if len(X_test) else (np.nan, np.nan)
        rows.append({"epoch": epoch, "train_loss": float(tl), "train_accuracy": float(ta),
                     "test_loss": float(vl), "test_accuracy": float(va)})
    return pd.DataFrame(rows)


def head_probabilities(model, X) -> np.ndarray:
    """The head's probabilities for all rows in one eager call (no per-model ``predict`` graph)."""
    import keras
    return np.asarray(keras.ops.convert_to_numpy(model(np.asarray(X, np.float32), training=False))).ravel()
