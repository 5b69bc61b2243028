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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.atomic import atomic_path, write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.cache import ImageStore, sha256_file
from npc_lib.data.rois import dataset_mask
from npc_lib.data.split import assert_disjoint
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun
from npc_lib.learn.features import Features
from npc_lib.learn.headfit import standardise
from npc_lib.learn.loaders import tf_images
from npc_lib.learn.models import backbone, build_classifier, build_head, input_size_for, resolve_weights
from npc_lib.learn.runtime import peak_rss_mb, seeded_build, versions
from npc_lib.learn.stacked_heads import HeadTask, fit_heads

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
    outputs = [run.head, run.standardiser, run.model, run.predictions, run.history]
    meta["files"] = {p.name: sha256_file(p) for p in outputs if p.is_file()}  # checked before any reuse
    write_json(run.meta, meta)  # last: its presence marks a finished run


def run_config(profile: Profile, dataset: str, variant: str, name: str) -> dict:
    """The part of a profile that determines one run (hashed into run.json)."""
    raw = profile.as_dict()
    return {"dataset": dataset, "variant": variant, "backbone": name, "cohort": raw["cohort"],
            "geometry": raw["geometry"], "split": raw["split"], "train": raw["train"],
            "weights": profile.weights, "weights_fallback": profile.weights_fallback}


def profile_of_run(meta: dict) -> Profile:
    """The one-cell profile a finished run was trained with (the inverse of :func:`run_config`)."""
    cfg = meta["config"]
    raw = {"name": meta["profile"], **{k: cfg[k] for k in ("cohort", "geometry", "split", "train", "weights")},
           "backbones": [cfg["backbone"]], "datasets": [cfg["dataset"]], "variants": [cfg["variant"]]}
    if cfg.get("weights_fallback") is not None:
        raw["weights_fallback"] = cfg["weights_fallback"]
    return Profile.from_dict(raw, f"run {meta['profile']}/{cfg['dataset']}/{cfg['variant']}/{cfg['backbone']}")


def is_finished(run: ModelRun, cfg_hash: str, fingerprint: str) -> bool:
    """Did ``run`` finish with this configuration hash on this image store, its outputs intact?"""
    if not run.finished:
        if run.meta.is_file():
            log.warning("%s: %s is missing; fitting the run again", run.root.name, run.predictions.name)
        return False
    try:
        m = run.read_meta()
    except json.JSONDecodeError:
        return False
    if m.get("config_hash") != cfg_hash or m.get("store_fingerprint") != fingerprint:
        return False
    for name, digest in m.get("files", {}).items():  # a damaged output is refitted, never reused
        path = run.root / name
        if not path.is_file() or sha256_file(path) != digest:
            log.warning("%s: %s is %s; fitting the run again", run.root.name, name,
                        "missing" if not path.is_file() else "damaged (its hash no longer matches run.json)")
            return False
    return True


@dataclass
class HeadData:
    """One head run's inputs: the dataset view and its features standardised on training images."""

    view: pd.DataFrame
    X: np.ndarray          # standardised features, all rows of the view
    y: np.ndarray
    is_train: np.ndarray
    mean: np.ndarray
    sd: np.ndarray


def head_data(store: ImageStore, features: Features, dataset: str, variant: str, split: pd.Series) -> HeadData:
    """The view of ``dataset`` and its features, standardised with the training images' mean/SD."""
    view = dataset_view(store, dataset, split)
    X = np.asarray(features.values[view["image_id"].to_numpy()], dtype=np.float32)
    y = view["label"].to_numpy(np.float32)
    is_train = (view["split"] == "train").to_numpy()
    if len(np.unique(y[is_train])) < 2:
        raise NpcError(f"{dataset}/{variant}: the training images hold only one class")
    Xs, mean, sd = standardise(X, is_train)  # fitted on training images only
    return HeadData(view, Xs.astype(np.float32), y, is_train, mean, sd)


def save_head(path: Path, kernel: np.ndarray, bias: float, dropout: float, l2: float) -> None:
    """Write a fitted head as a Keras model (``features → probability``), atomically."""
    head = build_head(len(kernel), dropout, l2)
    head.get_layer("dm_probability").set_weights([kernel.reshape(-1, 1).astype(np.float32),
                                                  np.array([bias], np.float32)])
    with atomic_path(path, suffix=".keras") as tmp:
        head.save(tmp)


def train_heads(store: ImageStore, features: dict[str, Features], items: list[tuple[str, str, ModelRun | Path]],
                profile: Profile, split: pd.Series) -> list[dict]:
    """Fit the heads of ``items`` (dataset, variant, run folder) together on cached features
    (:func:`~npc_lib.learn.stacked_heads.fit_heads`) and write each run's outputs.

    Parameters
    ----------
    store : the image store the features were computed on
    features : variant -> :class:`~npc_lib.learn.features.Features` of one backbone
    items : (dataset, variant, run folder) per head
    profile : the profile (``train`` settings)
    split : patient_id -> ``train``/``test``

    Returns
    -------
    list of the runs' ``run.json``, in ``items`` order.
    """
    t0 = time.perf_counter()
    tr = profile.train
    data = [head_data(store, features[v], d, v, split) for d, v, _ in items]
    fits = fit_heads([HeadTask(h.X[h.is_train], h.y[h.is_train], int(tr.seed), h.X[~h.is_train],
                               h.y[~h.is_train]) for h in data],
                     epochs=int(tr.epochs), batch_size=int(tr.batch_size),
                     learning_rate=float(tr.learning_rate), dropout=float(tr.dropout), l2=float(tr.l2))
    share = (time.perf_counter() - t0) / max(len(items), 1)
    metas = []
    for (d, v, out), h, fit in zip(items, data, fits):
        t1 = time.perf_counter() - share  # each run's wall time: its share of the joint fit + its writing
        run = out if isinstance(out, ModelRun) else ModelRun(Path(out))
        feats = features[v]
        cfg = run_config(profile, d, v, feats.backbone)
        run.root.mkdir(parents=True, exist_ok=True)
        save_head(run.head, fit.kernel, fit.bias, tr.dropout, tr.l2)
        np.savez(run.standardiser, mean=h.mean, sd=h.sd)
        meta = _meta(profile, cfg, store, feats.provenance, h.view, t1, mode="head",
                     extra={"features": str(feats.path.parent.name), "input_size": feats.input_size,
                            "head_fit": "numpy (stacked)"})
        _write_outputs(run, h.view, fit.probabilities(h.X), fit.history, meta)
        metas.append(meta)
    return metas


def train_head(store: ImageStore, features: Features, dataset: str, variant: str, profile: Profile,
               split: pd.Series, out: ModelRun | Path) -> dict:
    """Fit one head on cached features of a dataset view (:func:`train_heads` with one item)."""
    return train_heads(store, {variant: features}, [(dataset, variant, out)], profile, split)[0]


def train_finetune(store: ImageStore, dataset: str, variant: str, name: str, profile: Profile,
                   split: pd.Series, out: ModelRun | Path, progress: bool = True) -> dict:
    """Fit the whole flat model (all layers trainable) on streamed images; resumable.

    Parameters are those of :func:`train_head`, with the backbone ``name`` instead of cached
    features; ``progress`` prints one line per epoch. Returns the run's ``run.json``.
    """
    run = out if isinstance(out, ModelRun) else ModelRun(Path(out))
    import keras
    import tensorflow as tf
    t0 = time.perf_counter()
    tr = profile.train
    cfg = run_config(profile, dataset, variant, name)
    spec = backbone(name)
    size = input_size_for(name, profile.geometry.input_size)
    weights, prov = resolve_weights(name, profile.weights, profile.weights_fallback)
    mixed = bool(tf.config.list_physical_devices("GPU"))  # float16 compute, float32 output layer (models.add_head)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    view = dataset_view(store, dataset, split)
    images = store.images(variant)
    is_train = (view["split"] == "train").to_numpy()
    rows, y = view["image_id"].to_numpy(), view["label"].to_numpy(np.float32)
    run.root.mkdir(parents=True, exist_ok=True)

    def fit(deterministic: bool):
        with seeded_build(int(tr.seed), deterministic):
            net = build_classifier(name, size, weights, tr.dropout, tr.l2)
        train_ds = tf_images(images, rows[is_train], spec, size, tr.batch_size, y[is_train], shuffle=True,
                             seed=int(tr.seed))
        test_ds = tf_images(images, rows[~is_train], spec, size, tr.batch_size, y[~is_train])
        net.compile(optimizer=keras.optimizers.Adam(tr.learning_rate), loss="binary_crossentropy",
                    metrics=["accuracy"])
        backup = keras.callbacks.BackupAndRestore(str(run.backup), delete_checkpoint=True)
        return net, net.fit(train_ds, epochs=tr.epochs, validation_data=test_ds, callbacks=[backup], shuffle=False,
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
    probs = model.predict(tf_images(images, rows, spec, size, tr.batch_size), verbose=0).ravel()
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
        "profile": profile.name, "mode": mode, "config": cfg, "config_hash": config_hash(cfg),
        "seeds": {"train": profile.train.seed, "split": profile.split.seed,
                  "cohort": profile.cohort.seed},
        "store_fingerprint": store.fingerprint, "weights": provenance,
        "counts": {k: {kk: int(vv) for kk, vv in v.items()} for k, v in split_counts.to_dict("index").items()},
        "versions": versions(), "wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
        **extra,
    }
