"""Fine-tuning EfficientNet-Lite0's top blocks on cached activations, the way a transfer-learning guide prescribes.

The network below the trained blocks is frozen, so its output (the activations at the input of the first
trained block) is computed once, by the feature pass (:func:`npc_lib.learn.features.extract_features`,
``tap_block``), and every epoch trains only the top: seconds on a CPU instead of a backbone's forward pass.

* BatchNormalization stays in inference mode (its moving statistics frozen, ``trainable = False``): a batch's
  own statistics never replace what the backbone learned, and training-mode and inference-mode outputs agree.
* The head is warmed up first: it starts from the run's head fitted on the frozen features (the same
  standardiser, kernel and bias), so the unfrozen blocks are not driven by a random head's gradients.
* A low learning rate (Adam), the paper's batch, dropout and L2.
* Early stopping on a validation part carved from the *training* patients (stratified by DM), the best
  epoch's weights restored; test patients are never looked at.

Lite0 has 17 blocks here: its 16 inverted-residual blocks and the 1280-filter top convolution; ``blocks = k``
trains the top ``k`` of them (``k = 1``: the top convolution alone).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from npc_lib.ablations import tap_block  # noqa: F401 - where the trained blocks start


@dataclass
class TopFit:
    """A fine-tuned top: every image's probability, the history and the epochs kept (the best one)."""

    probabilities: np.ndarray
    history: pd.DataFrame
    best_epoch: int
    seconds: float


def freeze_batch_norm(model) -> int:
    """Set every BatchNormalization layer of ``model`` to inference mode (frozen statistics); returns how many."""
    import keras
    n = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            n += 1
    return n


def top_model(backbone, first_block: int, input_shape: tuple, mean: np.ndarray, sd: np.ndarray,
              kernel: np.ndarray, bias: float, dropout: float, l2: float):
    """Lite0 from ``first_block`` on (weights copied by layer name from ``backbone``, BatchNormalization frozen),
    global average pooling, the head's standardiser as a fixed layer, dropout and the warm head."""
    import keras

    from npc_lib.learn.lite0 import build_lite0_top
    from npc_lib.learn.models import add_head
    top = build_lite0_top(first_block, input_shape)
    for layer in top.layers:
        if layer.weights:
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    freeze_batch_norm(top)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(top.output)
    scale = np.where(sd > 1e-6, sd, 1.0).astype(np.float32)
    x = keras.layers.Normalization(mean=mean.astype(np.float32), variance=scale ** 2, name="standardiser")(x)
    model = keras.Model(top.input, add_head(x, dropout, l2), name="lite0_top_dm")
    model.get_layer("dm_probability").set_weights([np.asarray(kernel, np.float32).reshape(-1, 1),
                                                   np.array([bias], np.float32)])
    return model


def finetune_top(model, X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray, *,
                 epochs: int, patience: int, batch_size: int, learning_rate: float, seed: int) -> TopFit:
    """Train ``model`` (from :func:`top_model`) on the rows ``fit_rows`` of the cached activations ``X``, stopping
    when the loss on ``val_rows`` has not improved for ``patience`` epochs (best weights restored); returns every
    row's probability."""
    import keras
    t0 = time.perf_counter()
    keras.utils.set_random_seed(int(seed))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(patience), restore_best_weights=True)
    Xf = np.asarray(X, np.float32)
    hist = model.fit(Xf[fit_rows], y[fit_rows], validation_data=(Xf[val_rows], y[val_rows]), epochs=int(epochs),
                     batch_size=int(batch_size), shuffle=True, callbacks=[stop], verbose=0)
    h = pd.DataFrame(hist.history).rename(columns={"loss": "train_loss", "accuracy": "train_accuracy",
                                                   "val_loss": "validation_loss", "val_accuracy": "validation_accuracy"})
    h.insert(0, "epoch", np.arange(1, len(h) + 1))
    best = int(h["validation_loss"].idxmin()) + 1
    probs = np.asarray(model.predict(Xf, batch_size=256, verbose=0), np.float32).ravel()
    return TopFit(probs, h, best, time.perf_counter() - t0)


def validation_patients(train: pd.DataFrame, fraction: float = 0.2, seed: int = 0) -> set:
    """A stratified share of the training patients (``patient_id``, ``label`` per image) held out for early
    stopping."""
    from npc_lib.data.split import patient_split
    patients = train.groupby("patient_id")["label"].first()
    part = patient_split(pd.DataFrame({"patient_id": patients.index, "dm": patients.to_numpy().astype(int)}),
                         seed=seed, test_fraction=fraction)
    return set(part.index[part.eq("test")])
