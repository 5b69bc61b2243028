"""The stacked NumPy head fit: Keras' maths, independent heads, learning, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npc_lib.learn.stacked_heads import HeadTask, fit_heads

SETTINGS = dict(epochs=12, batch_size=32, learning_rate=1e-2, dropout=0.5, l2=1e-4)


def _data(n, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return X, y


def test_heads_learn_and_history_has_fits_meaning():
    X, y = _data(300)
    fit, = fit_heads([HeadTask(X[:240], y[:240], 3, X[240:], y[240:])], **{**SETTINGS, "epochs": 30})
    h = fit.history
    assert list(h.columns) == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    assert list(h["epoch"]) == list(range(1, 31))
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["test_accuracy"].iloc[-1] > 0.85
    p = fit.probabilities(X[240:])
    assert p.shape == (60,) and ((p > 0) & (p < 1)).all()
    # the last test loss is the BCE of these probabilities plus the L2 penalty
    bce = -np.mean(y[240:] * np.log(p) + (1 - y[240:]) * np.log(1 - p))
    assert h["test_loss"].iloc[-1] == pytest.approx(bce + 1e-4 * np.sum(fit.kernel.astype(float) ** 2), rel=1e-4)


def test_a_head_fits_the_same_alone_or_stacked_and_is_deterministic():
    tasks = [HeadTask(*_data(n, seed=s), seed=s) for n, s in ((70, 1), (300, 2), (129, 3), (33, 4))]
    together = fit_heads(tasks, **SETTINGS)
    again = fit_heads(tasks, **SETTINGS)
    for k, task in enumerate(tasks):
        alone, = fit_heads([task], **SETTINGS)
        np.testing.assert_allclose(together[k].kernel, alone.kernel, rtol=1e-5, atol=1e-6)
        assert together[k].bias == pytest.approx(alone.bias, abs=1e-6)
        pd.testing.assert_frame_equal(together[k].history, alone.history, rtol=1e-5)
        np.testing.assert_array_equal(together[k].kernel, again[k].kernel)
    # different seeds give different heads (the seed reaches initialisation, order and dropout)
    other, = fit_heads([HeadTask(tasks[1].X_train, tasks[1].y_train, seed=99)], **SETTINGS)
    assert np.abs(other.kernel - together[1].kernel).max() > 1e-3


def test_same_maths_as_the_keras_fit():
    """Without dropout and with one batch per epoch (the order of rows then only changes float
    rounding) the stacked fit and Keras' fit follow the same path from the same start."""
    keras = pytest.importorskip("keras")
    from npc_lib.learn.headfit import fit_head
    from npc_lib.learn.models import build_head
    X, y = _data(200)
    keras.utils.set_random_seed(5)
    head = build_head(16, dropout=0.0, l2=1e-3)
    kernel0 = head.get_layer("dm_probability").get_weights()[0].ravel().copy()
    hist = fit_head(head, keras.optimizers.Adam(1e-2), X, y, X[:0], y[:0], epochs=25, batch_size=256, seed=5)
    fit, = fit_heads([HeadTask(X, y, seed=5, kernel0=kernel0)], epochs=25, batch_size=256, learning_rate=1e-2,
                     dropout=0.0, l2=1e-3)
    kernel, bias = head.get_layer("dm_probability").get_weights()
    assert np.abs(kernel0 - kernel.ravel()).max() > 0.05  # it moved
    np.testing.assert_allclose(fit.kernel, kernel.ravel(), atol=2e-5)
    assert fit.bias == pytest.approx(float(bias[0]), abs=2e-5)
    np.testing.assert_allclose(fit.history["train_loss"], hist["train_loss"], rtol=1e-4)


def test_dropout_rate_is_kept_in_expectation():
    from npc_lib.learn.stacked_heads import _dropout_mask
    gen = np.random.default_rng(0)
    for rate in (0.5, 0.2, 0.0):
        keep16 = int(round((1 - rate) * 65536))
        m = _dropout_mask(gen, 400, 100, keep16)
        assert m.shape == (400, 100)
        assert m.mean() == pytest.approx(1 - rate, abs=0.01)


def test_bad_tasks_are_refused():
    X, y = _data(50)
    with pytest.raises(ValueError, match="feature dimension"):
        fit_heads([HeadTask(X, y, 0), HeadTask(X[:, :8], y, 0)], **SETTINGS)
    with pytest.raises(ValueError, match="rows"):
        fit_heads([HeadTask(X, y[:40], 0)], **SETTINGS)


def _keras_reference(X, y, seed, *, epochs, batch_size, learning_rate, dropout, l2):
    """The same training loop written with TensorFlow and Keras' own pieces — Keras' sigmoid and
    binary cross-entropy (which, on TensorFlow, keeps the logits), its L2 term and its Adam — consuming
    the head's random stream in the stacked fit's order (initialisation, each epoch's shuffle, each batch's
    dropout mask), so both see the same batches and the same masks."""
    import keras
    import tensorflow as tf
    from npc_lib.learn.stacked_heads import _dropout_mask
    gen = np.random.default_rng(seed)
    n, d = X.shape
    limit = np.sqrt(6.0 / (d + 1))
    w = tf.Variable(gen.uniform(-limit, limit, d).astype(np.float32)[:, None])
    b = tf.Variable(np.zeros(1, np.float32))
    opt = keras.optimizers.Adam(learning_rate)
    keep16 = int(round((1.0 - dropout) * 65536))
    scale = np.float32(65536 / keep16)
    for _ in range(epochs):
        perm = gen.permutation(n)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb = X[idx]
            if dropout > 0:
                xb = xb * _dropout_mask(gen, len(idx), d, keep16) * scale
            with tf.GradientTape() as tape:
                p = keras.activations.sigmoid(tf.matmul(xb, w) + b)
                loss = tf.reduce_mean(keras.losses.binary_crossentropy(y[idx][:, None], p)) + l2 * tf.reduce_sum(w * w)
            opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
    return w.numpy().ravel(), float(b.numpy()[0])


def test_same_maths_as_keras_with_dropout_several_batches_and_saturated_logits():
    """Features scaled so that many logits pass ±16 (where a clipped cross-entropy has no gradient): the
    stacked fit follows Keras' path through several epochs of shuffled batches with dropout."""
    pytest.importorskip("tensorflow")
    X, y = _data(150, d=8, seed=3)
    X = (X * 40).astype(np.float32)
    settings = dict(epochs=6, batch_size=32, learning_rate=5e-2, dropout=0.5, l2=1e-3)
    fit, = fit_heads([HeadTask(X, y, seed=11)], **settings)
    z = X @ fit.kernel + fit.bias
    assert (np.abs(z) > 16).mean() > 0.2  # saturated logits are common here
    kernel, bias = _keras_reference(X, y, 11, **settings)
    np.testing.assert_allclose(fit.kernel, kernel, rtol=1e-3, atol=1e-3)
    assert fit.bias == pytest.approx(bias, abs=1e-3)
