"""Intensity harmonisation of another centre's image store onto the training centre's images.

Every stored image is already scaled by its own crop's 1st–99th percentiles (:func:`npc_lib.data.rois.normalise`),
which removes a vendor's intensity scale but not a protocol's contrast. The choices here act on the ROI
pixels of each external image (its footprint, not the canvas padding) and are fitted on the training
centre's *training* images only, per region (primary, node) and variant:

``none``       the stored images as they are;
``zscore``     each image's ROI pixels z-scored, then given the training images' typical ROI mean and SD
               (the median over training images of each image's own mean and SD);
``histogram``  each image's ROI pixels matched to the pooled ROI histogram of the training images
               (:func:`skimage.exposure.match_histograms`).

Pixel spacing is harmonised where the crops are cut (``build_image_store(..., resample_mm=...)``), since a
stored image no longer holds the crop at its native size.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.exposure import match_histograms

from npc_lib.atomic import atomic_dir, write_json
from npc_lib.data.cache import ImageStore, build_image_store, open_image_store, sha256_file
from npc_lib.data.cohort import Cohort
from npc_lib.data.rois import Geometry, box_columns, footprint
from npc_lib.layout import store_folder

INTENSITY_CHOICES = ("none", "zscore", "histogram")
REFERENCE_SAMPLE = 200_000  # pooled training ROI pixels kept per region × variant for histogram matching


@dataclass(frozen=True)
class Reference:
    """The training centre's ROI intensities per ``(region, variant)``: typical mean and SD, pooled sample."""

    mean: dict
    sd: dict
    pixels: dict

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.pixels):
            h.update(json.dumps([*key, round(self.mean[key], 6), round(self.sd[key], 6)]).encode())
            h.update(np.ascontiguousarray(self.pixels[key]).tobytes())
        return h.hexdigest()[:16]


def _footprints(index: pd.DataFrame, variant: str, geometry: Geometry, resample_mm: float | None):
    """Each row's footprint mask (cached by crop shape and zoom)."""
    x0, y0, x1, y1 = box_columns()[variant]
    cache: dict = {}
    for r in index.itertuples():
        zoom = None if resample_mm is None else (r.spacing_row_mm / resample_mm, r.spacing_col_mm / resample_mm)
        key = (getattr(r, y1) - getattr(r, y0), getattr(r, x1) - getattr(r, x0),
               None if zoom is None else (round(zoom[0], 6), round(zoom[1], 6)))
        if key not in cache:
            cache[key] = footprint(key[0], key[1], geometry, zoom)
        yield r.image_id, cache[key]


def fit_reference(store: ImageStore, train_patients, seed: int = 0) -> Reference:
    """The training images' ROI intensities of ``store`` (only rows of ``train_patients``)."""
    geometry = Geometry(**store.manifest["geometry"])
    rng = np.random.default_rng(seed)
    train = store.index.loc[store.index["patient_id"].isin(set(train_patients))]
    mean, sd, pixels = {}, {}, {}
    for variant in box_columns():
        images = store.images(variant)
        for region, rows in train.groupby("region"):
            means, sds, pooled = [], [], []
            for image_id, mask in _footprints(rows, variant, geometry, store.manifest.get("resample_mm")):
                values = images[image_id][mask].astype(np.float32)
                means.append(values.mean())
                sds.append(values.std())
                pooled.append(values)
            pooled = np.concatenate(pooled)
            if len(pooled) > REFERENCE_SAMPLE:
                pooled = rng.choice(pooled, REFERENCE_SAMPLE, replace=False)
            key = (region, variant)
            mean[key], sd[key], pixels[key] = float(np.median(means)), float(np.median(sds)), np.sort(pooled)
    return Reference(mean, sd, pixels)


def harmonise_values(values: np.ndarray, method: str, reference: Reference, key: tuple[str, str]) -> np.ndarray:
    """One image's ROI pixel values (float) mapped by ``method`` onto the reference of ``key``."""
    if method == "none" or values.size == 0:
        return values
    if method == "zscore":
        sd = values.std()
        z = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
        return reference.mean[key] + reference.sd[key] * z
    if method == "histogram":
        return match_histograms(values, reference.pixels[key])
    raise ValueError(f"unknown intensity harmonisation {method!r}; known: {', '.join(INTENSITY_CHOICES)}")


def harmonised_store(store: ImageStore, method: str, reference: Reference, cache_dir: str | Path) -> ImageStore:
    """``store`` with every image's ROI pixels harmonised by ``method`` (a new store in ``cache_dir``,
    reused while its source and reference are unchanged; ``none`` returns ``store`` itself)."""
    if method not in INTENSITY_CHOICES:
        raise ValueError(f"unknown intensity harmonisation {method!r}; known: {', '.join(INTENSITY_CHOICES)}")
    if method == "none":
        return store
    fp = hashlib.sha256(f"{store.fingerprint}:{method}:{reference.digest()}".encode()).hexdigest()[:20]
    root = store_folder(Path(cache_dir), fp)
    if root.exists():
        try:
            return open_image_store(root, verify=False)
        except Exception:  # a partial folder: rebuild it
            shutil.rmtree(root)
    geometry = Geometry(**store.manifest["geometry"])
    with atomic_dir(root) as tmp:
        digests = {}
        for variant in box_columns():
            source = store.images(variant)
            out = np.zeros(source.shape, np.uint8)
            for region, rows in store.index.groupby("region"):
                key = (region, variant)
                for image_id, mask in _footprints(rows, variant, geometry, store.manifest.get("resample_mm")):
                    img = source[image_id]
                    mapped = harmonise_values(img[mask].astype(np.float32), method, reference, key)
                    out[image_id][mask] = np.clip(np.round(mapped), 0, 255).astype(np.uint8)
            out.tofile(tmp / f"{variant}.u8")
            digests[f"{variant}.u8"] = sha256_file(tmp / f"{variant}.u8")
        store.index.to_parquet(tmp / "index.parquet", index=False)
        digests["index.parquet"] = sha256_file(tmp / "index.parquet")
        write_json(tmp / "manifest.json", {**store.manifest, "fingerprint": fp, "files": digests,
                                           "harmonisation": {"method": method, "source": store.fingerprint,
                                                             "reference": reference.digest()}})
    return open_image_store(root, verify=False)


def reference_summary(reference: Reference) -> pd.DataFrame:
    """The reference as a table: region, variant, typical ROI mean and SD, pooled pixels kept."""
    return pd.DataFrame([{"region": r, "variant": v, "mean": reference.mean[(r, v)], "sd": reference.sd[(r, v)],
                          "pixels": len(reference.pixels[(r, v)])} for r, v in sorted(reference.mean)])


def training_spacing(store: ImageStore, split: pd.Series) -> float:
    """The training patients' median in-plane pixel spacing (mm): the target of spacing resampling."""
    train = store.index.loc[store.index["patient_id"].map(split).eq("train")]
    return float(np.median(np.r_[train["spacing_row_mm"].to_numpy(), train["spacing_col_mm"].to_numpy()]))


def harmonised_external_store(cohort: Cohort, train_store: ImageStore, split: pd.Series, cache: Path,
                              intensity: str = "none", resample: bool = False, reference=None,
                              progress: bool = False) -> ImageStore:
    """The external cohort's image store cut with the run's geometry, resampled to the training spacing
    (``resample``) and its ROI intensities harmonised onto the training images (``intensity``)."""
    geometry = Geometry(**train_store.manifest["geometry"])
    store = build_image_store(cohort, geometry, cache, progress=progress,
                              resample_mm=training_spacing(train_store, split) if resample else None)
    if intensity == "none":
        return store
    reference = reference or fit_reference(train_store, split.index[split.eq("train")])
    return harmonised_store(store, intensity, reference, cache)
