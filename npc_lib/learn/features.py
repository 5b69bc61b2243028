"""Backbone features of an image store, computed once per backbone and cached (verified by checksum).

``head`` mode fits its 32 heads on index views of these features, so each backbone sees each
stored image once.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npc_lib.config import Profile
from npc_lib.atomic import atomic_path, write_json
from npc_lib.data.cache import ImageStore, sha256_file
from npc_lib.errors import NpcError
from npc_lib.layout import features_folder
from npc_lib.learn.loaders import preprocessed_chunks
from npc_lib.learn.models import backbone, build_feature_extractor, input_size_for, resolve_weights
from npc_lib.learn.runtime import seeded_build, versions
from npc_lib.vocabulary import variant_names

log = logging.getLogger(__name__)
FEATURE_BATCH = 64


@dataclass
class Features:
    """Cached backbone features of one store variant: ``values`` rows align with the store index."""

    values: np.ndarray
    backbone: str
    input_size: int
    provenance: dict
    path: Path


def feature_dir(store: ImageStore, cache_dir: Path, name: str, size: int, provenance: dict, seed: int,
                precision: str = "float32") -> Path:
    tag = provenance["used"] if provenance["used"] != "file" else f"file-{provenance['sha256'][:10]}"
    tag = tag if tag != "random" else f"random-seed{seed}"
    tag = tag if precision == "float32" else f"{tag}-{precision}"
    return features_folder(cache_dir, store.fingerprint) / f"{name}-{size}px-{tag}"


def tap_file(variant: str, block: int) -> str:
    """The file of a variant's activations at the input of Lite0's block ``block`` (fine-tuning from there)."""
    return f"{variant}.block{block}-input.npy"


class Inference:
    """A model's inference on fixed-size batches through one traced function (no retracing for a short last
    batch: it is padded), faster than ``Model.predict``'s per-call set-up on small CPUs."""

    def __init__(self, model, batch: int = FEATURE_BATCH):
        import tensorflow as tf
        self.batch = batch
        self.fn = tf.function(lambda x: model(x, training=False))

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        outs = []
        for start in range(0, len(x), self.batch):
            part = x[start:start + self.batch]
            n = len(part)
            if n < self.batch:
                part = np.concatenate([part, np.zeros((self.batch - n, *part.shape[1:]), part.dtype)])
            res = self.fn(part)
            res = res if isinstance(res, (list, tuple)) else [res]
            outs.append([np.asarray(r, np.float32)[:n] for r in res])
        return [np.concatenate(parts) for parts in zip(*outs)] if outs else []


def extract_features(store: ImageStore, name: str, profile: Profile, cache_dir: Path,
                     reuse: bool = True, tap_block: int | None = None) -> dict[str, Features]:
    """Features of every stored image for each of the profile's variants, with backbone ``name``.

    Parameters
    ----------
    store : the image store (``n`` images per variant)
    name : backbone name (``vocabulary.BACKBONES``)
    profile : the profile (input size, weights, seed, variants)
    cache_dir : the run's cache folder; features live under ``features-<store fingerprint>/``
    reuse : reuse valid cached features (False: compute them anew, the code that computes them changed)
    tap_block : EfficientNet-Lite0 only: also keep every image's activations at the input of this block
        (float16, :func:`tap_file`), on which its top blocks are fine-tuned

    Returns
    -------
    dict variant -> :class:`Features` whose ``values`` has shape (n, feature_dim), rows aligned
    with ``store.index``; reused from the cache when its checksums match.
    """
    extractor = FeatureExtractor(name, profile, tap_block)
    try:
        return extractor.features(store, cache_dir, reuse)
    finally:
        extractor.close()


# backbones built in this process, kept for the stages after the one that built them (the TensorFlow worker builds
# each backbone for the study's features, then again for the second centre's): from the same seed or file a
# backbone's weights are the same, so keeping it saves the building and compiling and changes no number
_BUILT: OrderedDict = OrderedDict()
BUILT_KEPT = 5


class FeatureExtractor:
    """One backbone, built once (when a store's features are not cached yet), for the features of any number of
    image stores: :meth:`features` as :func:`extract_features` does for one store."""

    def __init__(self, name: str, profile: Profile, tap_block: int | None = None):
        self.name, self.profile, self.tap_block = name, profile, tap_block
        self.spec = backbone(name)
        self.size = input_size_for(name, profile.geometry.input_size)
        self.weights, self.prov = resolve_weights(name, profile.weights, profile.weights_fallback)
        self.seed, self.precision = int(profile.train.seed), profile.precision
        self.variants = [v for v in variant_names() if v in profile.variants]
        self.model = self.infer = None

    def folder(self, store: ImageStore, cache_dir: Path) -> Path:
        """Where this backbone's features of ``store`` are cached."""
        return feature_dir(store, cache_dir, self.name, self.size, self.prov, self.seed, self.precision)

    def _cached(self, fdir: Path) -> dict[str, Features] | None:
        manifest_path = fdir / "manifest.json"
        if not manifest_path.is_file():
            return None
        manifest = json.loads(manifest_path.read_text())
        try:
            out = {}
            backbone_file = fdir / "backbone.weights.h5"  # the random backbone Grad-CAM rebuilds
            if backbone_file.name in manifest["files"] and \
                    manifest["files"][backbone_file.name] != sha256_file(backbone_file):
                raise ValueError(f"{backbone_file} checksum mismatch")
            for v in self.variants:
                p = fdir / f"{v}.npy"
                taps = [fdir / tap_file(v, self.tap_block)] if self.tap_block is not None else []
                for q in [p, *taps]:
                    if manifest["files"].get(q.name) != sha256_file(q):
                        raise ValueError(f"{q} checksum mismatch")
                out[v] = Features(np.load(p, mmap_mode="r"), self.name, self.size, manifest["provenance"], p)
            return out
        except (OSError, ValueError, KeyError) as exc:
            log.warning("recomputing features: %s", exc)
            return None

    def _build(self) -> None:
        import keras
        key = (self.name, self.size, str(self.weights), self.seed, self.precision, self.tap_block)
        if key in _BUILT:  # built (and compiled) by an earlier stage in this process: the same weights
            _BUILT.move_to_end(key)
            self.backbone_model, self.model, self.infer = _BUILT[key]
            return
        if self.precision != "float32":
            keras.mixed_precision.set_global_policy(f"mixed_{self.precision}")
        try:
            with seeded_build(self.seed):
                model = build_feature_extractor(self.name, self.size, self.weights)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.backbone_model = model
        if self.tap_block is not None:
            from npc_lib.learn.lite0 import block_output
            model = keras.Model(model.input, [model.output, model.get_layer(block_output(self.tap_block - 1)).output])
        self.model, self.infer = model, Inference(model)
        _BUILT[key] = (self.backbone_model, self.model, self.infer)
        while len(_BUILT) > BUILT_KEPT:
            _BUILT.popitem(last=False)

    def features(self, store: ImageStore, cache_dir: Path, reuse: bool = True) -> dict[str, Features]:
        """The features of ``store`` (cached under ``cache_dir``; reused when ``reuse`` and intact)."""
        fdir = self.folder(store, cache_dir)
        if reuse:
            cached = self._cached(fdir)
            if cached is not None:
                return cached
        if self.model is None:
            self._build()
        name, spec, size, prov = self.name, self.spec, self.size, self.prov
        fdir.mkdir(parents=True, exist_ok=True)
        if prov["used"] == "random":  # keep the random backbone so models can be rebuilt (Grad-CAM)
            with atomic_path(fdir / "backbone.weights.h5", suffix=".weights.h5") as tmp:
                self.backbone_model.save_weights(tmp)
            prov = {**prov, "backbone_weights": "backbone.weights.h5"}
        files, out = {}, {}
        for v in self.variants:
            images = store.images(v)
            rows = np.arange(images.shape[0])
            t0 = time.perf_counter()
            parts = [self.infer(x) for x in preprocessed_chunks(images, spec, size)]
            feats = np.concatenate([p[0] for p in parts]) if len(rows) else np.zeros((0, spec.feature_dim), np.float32)
            rate = len(rows) / max(time.perf_counter() - t0, 1e-9)
            if self.tap_block is not None and len(rows):
                name_tap = tap_file(v, self.tap_block)
                with atomic_path(fdir / name_tap, suffix=".npy") as tmp:
                    np.save(tmp, np.concatenate([p[1] for p in parts]).astype(np.float16))
                files[name_tap] = sha256_file(fdir / name_tap)
            if not np.isfinite(feats).all():
                raise NpcError(f"{name}: non-finite features for {v} images")
            with atomic_path(fdir / f"{v}.npy", suffix=".npy") as tmp:
                np.save(tmp, feats.astype(np.float32))
            files[f"{v}.npy"] = sha256_file(fdir / f"{v}.npy")
            out[v] = Features(np.load(fdir / f"{v}.npy", mmap_mode="r"), name, size, prov, fdir / f"{v}.npy")
            log.info("%s %s features: %d images at %.1f img/s", name, v, len(rows), rate)
        if "backbone.weights.h5" in os.listdir(fdir):
            files["backbone.weights.h5"] = sha256_file(fdir / "backbone.weights.h5")
        write_json(fdir / "manifest.json", {"backbone": name, "input_size": size, "provenance": prov, "files": files,
                                            "store": store.fingerprint, "precision": self.precision,
                                            "versions": versions()})
        return out

    def close(self) -> None:
        """Let TensorFlow free the model."""
        if self.model is not None:
            import keras
            self.model = self.infer = self.backbone_model = None
            keras.backend.clear_session()
