"""Training: frozen-backbone ``head`` mode on cached features, and full ``finetune`` mode.

``head``: each backbone's features are computed once per image store variant and cached; the
32 (dataset × variant × backbone) heads are then fitted on index views of those features.
Features are standardised with mean/SD of the training images only. ``finetune``: the whole
flat model trains on streamed images (mixed precision on a GPU); BackupAndRestore resumes an
interrupted fit. Each run writes the model, ``history.csv`` (loss/accuracy on train and test
per epoch; no early stopping or selection on test), ``predictions.parquet`` and ``run.json``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.atomic import atomic_path, write_json
from npc_lib.config import config_hash
from npc_lib.data.cache import ImageStore
from npc_lib.data.rois import dataset_mask
from npc_lib.data.split import assert_disjoint
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun
from npc_lib.learn.features import Features
from npc_lib.learn.headfit import fit_head, head_probabilities, standardise
from npc_lib.learn.loaders import tf_images
from npc_lib.learn.models import backbone, build_classifier, build_head, input_size_for, resolve_weights
from npc_lib.learn.runtime import peak_rss_mb, seeded_build, versions

log = logging.getLogger(__name__)


def dataset_view(store: ImageStore, dataset: str, split: pd.Series) -> pd.DataFrame:
    """The store index rows of ``dataset`` with each image's ``split``; refuses a patient with
    no split or with images on both sides."""
    idx = store.index.loc[dataset_mask(store.index, dataset)].copy()
    idx["split"] = idx["patient_id"].map(split)
    if idx["split"].isna().any():
        raise NpcError(f"patient {idx.loc[idx['split'].isna(), 'patient_id'].iloc[0]} has no split")
    assert_disjoint(split)
    if not set(idx.loc[idx.split == "train", "patient_id"]).isdisjoint(idx.loc[idx.split == "test", "patient_id"]):
        raise AssertionError("a patient has images in both train and test")
    return idx


def _history_frame(history) -> pd.DataFrame:
    h = pd.DataFrame(history.history)
    h = h.rename(columns={"loss": "train_loss", "accuracy": "train_accuracy",
                          "val_loss": "test_loss", "val_accuracy": "test_accuracy"})
    h.insert(0, "epoch", np.arange(1, len(h) + 1))
    return h[["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]]


def _write_outputs(run: ModelRun, view: pd.DataFrame, probs: np.ndarray, history: pd.DataFrame, meta: dict) -> None:
    pred = view[["patient_id", "image_id", "split", "label", "region", "slice_index"]].copy()
    pred["probability"] = probs.astype(float)
    with atomic_path(run.predictions, suffix=".parquet") as tmp:
        pred.to_parquet(tmp, index=False)
    with atomic_path(run.history, suffix=".csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(run.meta, meta)  # last: its presence marks a finished run


def run_config(profile: dict, dataset: str, variant: str, name: str) -> dict:
    """The part of a profile that determines one run (hashed into run.json)."""
    return {"dataset": dataset, "variant": variant, "backbone": name, "cohort": profile["cohort"],
            "geometry": profile["geometry"], "split": profile["split"], "train": profile["train"],
            "weights": profile.get("weights"), "weights_fallback": profile.get("weights_fallback")}


def is_finished(run: ModelRun, cfg_hash: str, fingerprint: str) -> bool:
    """Did ``run`` finish with this configuration hash on this image store?"""
    if not run.finished:
        return False
    try:
        m = run.read_meta()
    except json.JSONDecodeError:
        return False
    return m.get("config_hash") == cfg_hash and m.get("store_fingerprint") == fingerprint


def train_head(store: ImageStore, features: Features, dataset: str, variant: str, profile: dict,
               split: pd.Series, out: ModelRun | Path) -> dict:
    """Fit one head on cached features of a dataset view; write model and outputs to ``out``.

    Parameters
    ----------
    store : the image store the features were computed on
    features : one variant's :class:`~npc_lib.learn.features.Features`, values (n_images, feature_dim)
    dataset, variant : the run's dataset and variant
    profile : the profile (``train`` settings)
    split : patient_id -> ``train``/``test``
    out : the run's folder (``RunLayout.model(...)``)

    Returns
    -------
    dict: the run's ``run.json``.
    """
    run = out if isinstance(out, ModelRun) else ModelRun(Path(out))
    import keras
    t0 = time.perf_counter()
    cfg = run_config(profile, dataset, variant, features.backbone)
    tr = profile["train"]
    view = dataset_view(store, dataset, split)
    X = np.asarray(features.values[view["image_id"].to_numpy()], dtype=np.float32)
    y = view["label"].to_numpy(np.float32)
    is_train = (view["split"] == "train").to_numpy()
    if len(np.unique(y[is_train])) < 2:
        raise NpcError(f"{dataset}/{variant}: the training images hold only one class")
    Xs, mean, sd = standardise(X, is_train)  # fitted on training images only
    with seeded_build(int(tr["seed"])):
        head = build_head(X.shape[1], tr["dropout"], tr["l2"])
    optimizer = keras.optimizers.Adam(tr["learning_rate"])
    history = fit_head(head, optimizer, Xs[is_train], y[is_train], Xs[~is_train], y[~is_train],
                       epochs=int(tr["epochs"]), batch_size=int(tr["batch_size"]), seed=int(tr["seed"]))
    head.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    probs = head_probabilities(head, Xs)
    run.root.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.head, suffix=".keras") as tmp:
        head.save(tmp)
    np.savez(run.standardiser, mean=mean, sd=sd)
    meta = _meta(profile, cfg, store, features.provenance, view, t0, mode="head",
                 extra={"features": str(features.path.parent.name), "input_size": features.input_size})
    _write_outputs(run, view, probs, history, meta)
    return meta


def train_finetune(store: ImageStore, dataset: str, variant: str, name: str, profile: dict,
                   split: pd.Series, out: ModelRun | Path, progress: bool = True) -> dict:
    """Fit the whole flat model (all layers trainable) on streamed images; resumable.

    Parameters are those of :func:`train_head`, with the backbone ``name`` instead of cached
    features; ``progress`` prints one line per epoch. Returns the run's ``run.json``.
    """
    run = out if isinstance(out, ModelRun) else ModelRun(Path(out))
    import keras
    import tensorflow as tf
    t0 = time.perf_counter()
    tr = profile["train"]
    cfg = run_config(profile, dataset, variant, name)
    spec = backbone(name)
    size = input_size_for(name, profile["geometry"]["input_size"])
    weights, prov = resolve_weights(name, profile.get("weights"), profile.get("weights_fallback"))
    mixed = bool(tf.config.list_physical_devices("GPU"))  # float16 compute, float32 output layer (models.add_head)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    view = dataset_view(store, dataset, split)
    images = store.images(variant)
    is_train = (view["split"] == "train").to_numpy()
    rows, y = view["image_id"].to_numpy(), view["label"].to_numpy(np.float32)
    run.root.mkdir(parents=True, exist_ok=True)

    def fit(deterministic: bool):
        with seeded_build(int(tr["seed"]), deterministic):
            net = build_classifier(name, size, weights, tr["dropout"], tr["l2"])
        train_ds = tf_images(images, rows[is_train], spec, size, tr["batch_size"], y[is_train], shuffle=True,
                             seed=int(tr["seed"]))
        test_ds = tf_images(images, rows[~is_train], spec, size, tr["batch_size"], y[~is_train])
        net.compile(optimizer=keras.optimizers.Adam(tr["learning_rate"]), loss="binary_crossentropy",
                    metrics=["accuracy"])
        backup = keras.callbacks.BackupAndRestore(str(run.backup), delete_checkpoint=True)
        return net, net.fit(train_ds, epochs=tr["epochs"], validation_data=test_ds, callbacks=[backup],
                            verbose=2 if progress else 0)

    determinism = {"op_determinism": True, "note": "deterministic TensorFlow ops"}
    try:
        model, hist = fit(True)
    except tf.errors.UnimplementedError as exc:  # e.g. GPU kernels without a deterministic version
        reason = str(exc).strip().splitlines()[0][:300]
        log.warning("%s: op determinism unsupported here (%s); training without it", run.root.name, reason)
        determinism = {"op_determinism": False, "note": f"op determinism switched off: {reason}"}
        keras.backend.clear_session()
        model, hist = fit(False)
    probs = model.predict(tf_images(images, rows, spec, size, tr["batch_size"]), verbose=0).ravel()
    with atomic_path(run.model, suffix=".keras") as tmp:
        model.save(tmp)
    keras.mixed_precision.set_global_policy("float32")
    meta = _meta(profile, cfg, store, prov, view, t0, mode="finetune",
                 extra={"input_size": size, "determinism": determinism,
                        "mixed_precision": mixed})
    _write_outputs(run, view, probs, _history_frame(hist), meta)
    keras.backend.clear_session()
    return meta


def _meta(profile, cfg, store, provenance, view, t0, mode, extra) -> dict:
    split_counts = view.groupby("split").agg(images=("image_id", "size"), patients=("patient_id", "nunique"),
                                            dm_patients=("label", lambda s: int(view.loc[s.index].groupby(
                                                "patient_id")["label"].first().sum())))
    return {
        "profile": profile["name"], "mode": mode, "config": cfg, "config_hash": config_hash(cfg),
        "seeds": {"train": profile["train"]["seed"], "split": profile["split"]["seed"],
                  "cohort": profile["cohort"].get("seed")},
        "store_fingerprint": store.fingerprint, "weights": provenance,
        "counts": {k: {kk: int(vv) for kk, vv in v.items()} for k, v in split_counts.to_dict("index").items()},
        "versions": versions(), "wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
        **extra,
    }
