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
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib import __version__
from npc_lib.atomic import atomic_path, write_json
from npc_lib.data.cache import ImageStore, sha256_file
from npc_lib.config import config_hash
from npc_lib.errors import NpcError
from npc_lib.learn.headfit import fit_head, head_probabilities
from npc_lib.learn.models import backbone, build_classifier, build_feature_extractor, build_head, input_size_for, resolve_weights
from npc_lib.data.rois import VARIANTS, dataset_mask
from npc_lib.data.split import assert_disjoint

log = logging.getLogger(__name__)
FEATURE_BATCH = 64


def slug(dataset: str, variant: str, backbone_name: str) -> str:
    return f"{dataset.lower().replace(' ', '-')}__{variant}__{backbone_name}"


def versions() -> dict:
    import keras
    import tensorflow as tf
    return {"npc_lib": __version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pandas": pd.__version__}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic`` also ask for deterministic ops."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    try:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            from tensorflow.python.framework import config as tf_config
            tf_config.disable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


@dataclass
class Features:
    """Cached backbone features of one store variant: ``values`` rows align with the store index."""

    values: np.ndarray
    backbone: str
    input_size: int
    provenance: dict
    path: Path


def feature_dir(store: ImageStore, cache_dir: Path, name: str, size: int, provenance: dict, seed: int) -> Path:
    tag = provenance["used"] if provenance["used"] != "file" else f"file-{provenance['sha256'][:10]}"
    tag = tag if tag != "random" else f"random-seed{seed}"
    return Path(cache_dir) / f"features-{store.fingerprint}" / f"{name}-{size}px-{tag}"


def extract_features(store: ImageStore, name: str, profile: dict, cache_dir: Path,
                     progress: bool = True) -> dict[str, Features]:
    """Features for every variant of the store with backbone ``name`` (cached, verified)."""
    spec = backbone(name)
    size = input_size_for(name, profile["geometry"]["input_size"])
    weights, prov = resolve_weights(name, profile.get("weights"), profile.get("weights_fallback"))
    seed = int(profile["train"]["seed"])
    fdir = feature_dir(store, cache_dir, name, size, prov, seed)
    manifest_path = fdir / "manifest.json"
    variants = [v for v in VARIANTS if v in profile["variants"]]
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        try:
            out = {}
            for v in variants:
                p = fdir / f"{v}.npy"
                if manifest["files"].get(p.name) != sha256_file(p):
                    raise ValueError(f"{p} checksum mismatch")
                out[v] = Features(np.load(p, mmap_mode="r"), name, size, manifest["provenance"], p)
            return out
        except (OSError, ValueError, KeyError) as exc:
            log.warning("recomputing features: %s", exc)
    import keras
    seed_everything(seed)
    model = build_feature_extractor(name, size, weights)
    fdir.mkdir(parents=True, exist_ok=True)
    if prov["used"] == "random":  # keep the random backbone so models can be rebuilt (Grad-CAM)
        with atomic_path(fdir / "backbone.weights.h5", suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        prov = {**prov, "backbone_weights": "backbone.weights.h5"}
    from npc_lib.learn.loaders import preprocessed_chunks
    files, out = {}, {}
    for v in variants:
        images = store.images(v)
        rows = np.arange(images.shape[0])
        t0 = time.perf_counter()
        feats = np.concatenate([model.predict(x, batch_size=FEATURE_BATCH, verbose=0)
                                for x in preprocessed_chunks(images, spec, size)]) if len(rows) else \
            np.zeros((0, spec.feature_dim), np.float32)
        rate = len(rows) / max(time.perf_counter() - t0, 1e-9)
        if not np.isfinite(feats).all():
            raise NpcError(f"{name}: non-finite features for {v} images")
        with atomic_path(fdir / f"{v}.npy", suffix=".npy") as tmp:
            np.save(tmp, feats.astype(np.float32))
        files[f"{v}.npy"] = sha256_file(fdir / f"{v}.npy")
        out[v] = Features(np.load(fdir / f"{v}.npy", mmap_mode="r"), name, size, prov, fdir / f"{v}.npy")
        log.info("%s %s features: %d images at %.1f img/s", name, v, len(rows), rate)
    if "backbone.weights.h5" in os.listdir(fdir):
        files["backbone.weights.h5"] = sha256_file(fdir / "backbone.weights.h5")
    write_json(manifest_path, {"backbone": name, "input_size": size, "provenance": prov, "files": files,
                               "store": store.fingerprint, "versions": versions()})
    keras.backend.clear_session()
    return out


def _view(store: ImageStore, dataset: str, split: pd.Series) -> pd.DataFrame:
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


def _write_outputs(out: Path, view: pd.DataFrame, probs: np.ndarray, history: pd.DataFrame, meta: dict) -> None:
    pred = view[["patient_id", "image_id", "split", "label", "region", "slice_index"]].copy()
    pred["probability"] = probs.astype(float)
    with atomic_path(out / "predictions.parquet", suffix=".parquet") as tmp:
        pred.to_parquet(tmp, index=False)
    with atomic_path(out / "history.csv", suffix=".csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(out / "run.json", meta)  # last: its presence marks a finished run


def run_config(profile: dict, dataset: str, variant: str, name: str) -> dict:
    """The part of a profile that determines one run (hashed into run.json)."""
    return {"dataset": dataset, "variant": variant, "backbone": name, "cohort": profile["cohort"],
            "geometry": profile["geometry"], "split": profile["split"], "train": profile["train"],
            "weights": profile.get("weights"), "weights_fallback": profile.get("weights_fallback")}


def is_finished(out: Path, cfg_hash: str, fingerprint: str) -> bool:
    meta = out / "run.json"
    if not meta.is_file():
        return False
    try:
        m = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return m.get("config_hash") == cfg_hash and m.get("store_fingerprint") == fingerprint and \
        (out / "predictions.parquet").is_file()


def train_head(store: ImageStore, features: Features, dataset: str, variant: str, profile: dict,
               split: pd.Series, out: Path, progress: bool = False) -> dict:
    """Fit one head on cached features of a dataset view; write model and outputs to ``out``."""
    import keras
    t0 = time.perf_counter()
    cfg = run_config(profile, dataset, variant, features.backbone)
    tr = profile["train"]
    view = _view(store, dataset, split)
    X = np.asarray(features.values[view["image_id"].to_numpy()], dtype=np.float32)
    y = view["label"].to_numpy(np.float32)
    is_train = (view["split"] == "train").to_numpy()
    if len(np.unique(y[is_train])) < 2:
        raise NpcError(f"{dataset}/{variant}: the training images hold only one class")
    mean, sd = X[is_train].mean(axis=0), X[is_train].std(axis=0)
    Xs = (X - mean) / np.where(sd > 1e-6, sd, 1.0)  # fitted on training images only
    seed_everything(int(tr["seed"]))
    head = build_head(X.shape[1], tr["dropout"], tr["l2"])
    optimizer = keras.optimizers.Adam(tr["learning_rate"])
    history = fit_head(head, optimizer, Xs[is_train], y[is_train], Xs[~is_train], y[~is_train],
                       epochs=int(tr["epochs"]), batch_size=int(tr["batch_size"]), seed=int(tr["seed"]))
    head.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    probs = head_probabilities(head, Xs)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "head.keras", suffix=".keras") as tmp:
        head.save(tmp)
    np.savez(out / "standardiser.npz", mean=mean, sd=sd)
    meta = _meta(profile, cfg, store, features.provenance, view, t0, mode="head",
                 extra={"features": str(features.path.parent.name), "input_size": features.input_size})
    _write_outputs(out, view, probs, history, meta)
    return meta


def train_finetune(store: ImageStore, dataset: str, variant: str, name: str, profile: dict,
                   split: pd.Series, out: Path, progress: bool = True) -> dict:
    """Fit the whole flat model (all layers trainable) on streamed images; resumable."""
    import keras
    import tensorflow as tf
    from npc_lib.learn.loaders import tf_images
    t0 = time.perf_counter()
    tr = profile["train"]
    cfg = run_config(profile, dataset, variant, name)
    spec = backbone(name)
    size = input_size_for(name, profile["geometry"]["input_size"])
    weights, prov = resolve_weights(name, profile.get("weights"), profile.get("weights_fallback"))
    mixed = bool(tf.config.list_physical_devices("GPU"))  # float16 compute, float32 output layer (models.add_head)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    view = _view(store, dataset, split)
    images = store.images(variant)
    is_train = (view["split"] == "train").to_numpy()
    rows, y = view["image_id"].to_numpy(), view["label"].to_numpy(np.float32)
    out.mkdir(parents=True, exist_ok=True)

    def fit(deterministic: bool):
        seed_everything(int(tr["seed"]), deterministic)
        train_ds = tf_images(images, rows[is_train], spec, size, tr["batch_size"], y[is_train], shuffle=True,
                             seed=int(tr["seed"]))
        test_ds = tf_images(images, rows[~is_train], spec, size, tr["batch_size"], y[~is_train])
        net = build_classifier(name, size, weights, tr["dropout"], tr["l2"])
        net.compile(optimizer=keras.optimizers.Adam(tr["learning_rate"]), loss="binary_crossentropy",
                    metrics=["accuracy"])
        backup = keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=True)
        return net, net.fit(train_ds, epochs=tr["epochs"], validation_data=test_ds, callbacks=[backup],
                            verbose=2 if progress else 0)

    determinism = {"op_determinism": True, "note": "deterministic TensorFlow ops"}
    try:
        model, hist = fit(True)
    except tf.errors.UnimplementedError as exc:  # e.g. GPU kernels without a deterministic version
        reason = str(exc).strip().splitlines()[0][:300]
        log.warning("%s: op determinism unsupported here (%s); training without it", out.name, reason)
        determinism = {"op_determinism": False, "note": f"op determinism switched off: {reason}"}
        keras.backend.clear_session()
        model, hist = fit(False)
    probs = model.predict(tf_images(images, rows, spec, size, tr["batch_size"]), verbose=0).ravel()
    with atomic_path(out / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    keras.mixed_precision.set_global_policy("float32")
    meta = _meta(profile, cfg, store, prov, view, t0, mode="finetune",
                 extra={"input_size": size, "determinism": determinism,
                        "mixed_precision": mixed})
    _write_outputs(out, view, probs, _history_frame(hist), meta)
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
