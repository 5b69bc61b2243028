"""Intensity harmonisation of another centre's image store onto the training centre's images: one monotone map
per centre, never one per image.

Every stored image is already scaled by its own crop's 1st–99th percentiles (:func:`npc_lib.data.rois.normalise`),
which removes a vendor's intensity scale but not a protocol's contrast. The choices here map the ROI pixels (an
image's footprint, not the canvas padding) of *every* image of the other centre through one lookup table per
region (primary, node) × variant, so that centre's pooled ROI distribution lands on the training centre's:

``none``       the stored images as they are;
``zscore``     a linear map: the centre's pooled ROI mean and SD onto the training images' pooled mean and SD;
``histogram``  quantile mapping: each stored value to the training distribution's quantile at the value's rank
               in the centre's pooled distribution (monotone, non-decreasing).

Because one map serves every image of a centre, what differs between its patients (a dark necrotic core, a
mottled texture: the planted biology) keeps its order and, for ``zscore``, its proportions; a per-image
normalisation would force every image onto one distribution and erase it. The training centre's reference uses
its training patients only; the other centre's map is fitted on the pixels of the store it is given (the main job
fits it on a separate tuning draw of that centre, never on the patients it is evaluated on). Pixel spacing is
harmonised where the crops are cut (``build_image_store(..., resample_mm=...)``).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.atomic import atomic_dir, write_json
from npc_lib.data.cache import ImageStore, build_image_store, open_image_store, sha256_file
from npc_lib.data.cohort import Cohort
from npc_lib.data.rois import Geometry, box_columns, footprint
from npc_lib.layout import store_folder

INTENSITY_CHOICES = ("none", "zscore", "histogram")
REFERENCE_SAMPLE = 200_000  # pooled ROI pixels kept per region × variant
LEVELS = np.arange(256)     # the stored values (uint8)


@dataclass(frozen=True)
class Reference:
    """A centre's pooled ROI intensities per ``(region, variant)``: mean, SD and a sorted sample of pixels."""

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


def fit_reference(store: ImageStore, patients=None, seed: int = 0) -> Reference:
    """The pooled ROI intensities of ``store``'s images (only the rows of ``patients`` when given)."""
    geometry = Geometry(**store.manifest["geometry"])
    rng = np.random.default_rng(seed)
    rows_of = store.index if patients is None else store.index.loc[store.index["patient_id"].isin(set(patients))]
    mean, sd, pixels = {}, {}, {}
    for variant in box_columns():
        images = store.images(variant)
        for region, rows in rows_of.groupby("region"):
            pooled = np.concatenate([images[i][mask] for i, mask in _footprints(
                rows, variant, geometry, store.manifest.get("resample_mm"))]).astype(np.float32)
            if len(pooled) > REFERENCE_SAMPLE:
                pooled = rng.choice(pooled, REFERENCE_SAMPLE, replace=False)
            key = (region, variant)
            mean[key], sd[key], pixels[key] = float(pooled.mean()), float(pooled.std()), np.sort(pooled)
    return Reference(mean, sd, pixels)


def centre_map(method: str, centre: Reference, reference: Reference, key: tuple[str, str]) -> np.ndarray:
    """The lookup table (256 values, non-decreasing) taking the centre's stored values of ``key`` (region,
    variant) onto the reference's distribution by ``method``."""
    if method not in INTENSITY_CHOICES:
        raise ValueError(f"unknown intensity harmonisation {method!r}; known: {', '.join(INTENSITY_CHOICES)}")
    if method == "none" or key not in centre.pixels or key not in reference.pixels:
        return LEVELS.astype(np.float32)
    if method == "zscore":
        scale = reference.sd[key] / centre.sd[key] if centre.sd[key] > 0 else 1.0
        return (reference.mean[key] + scale * (LEVELS - centre.mean[key])).astype(np.float32)
    src, dst = centre.pixels[key], reference.pixels[key]  # sorted samples
    rank = (np.searchsorted(src, LEVELS, "left") + np.searchsorted(src, LEVELS, "right")) / (2.0 * len(src))
    return np.interp(rank, (np.arange(len(dst)) + 0.5) / len(dst), dst).astype(np.float32)


def apply_map(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Stored uint8 values through a lookup table, rounded and clipped back to 0..255."""
    return np.clip(np.round(lut[np.asarray(values, np.uint8)]), 0, 255).astype(np.uint8)


def harmonised_store(store: ImageStore, method: str, centre: Reference, reference: Reference,
                     cache_dir: str | Path) -> ImageStore:
    """``store`` with every image's ROI pixels mapped by the centre's ``method`` map (``centre``: the pooled
    intensities the map is fitted on; ``reference``: the training images'). A new store in ``cache_dir``, reused
    while its source and both distributions are unchanged; ``none`` returns ``store`` itself."""
    if method not in INTENSITY_CHOICES:
        raise ValueError(f"unknown intensity harmonisation {method!r}; known: {', '.join(INTENSITY_CHOICES)}")
    if method == "none":
        return store
    fp = hashlib.sha256(f"{store.fingerprint}:{method}:centre:{centre.digest()}:{reference.digest()}".encode()
                        ).hexdigest()[:20]
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
            out = np.array(store.images(variant))
            for region, rows in store.index.groupby("region"):
                lut = centre_map(method, centre, reference, (region, variant))
                for image_id, mask in _footprints(rows, variant, geometry, store.manifest.get("resample_mm")):
                    out[image_id][mask] = apply_map(out[image_id][mask], lut)
            out.tofile(tmp / f"{variant}.u8")
            digests[f"{variant}.u8"] = sha256_file(tmp / f"{variant}.u8")
        store.index.to_parquet(tmp / "index.parquet", index=False)
        digests["index.parquet"] = sha256_file(tmp / "index.parquet")
        write_json(tmp / "manifest.json", {**store.manifest, "fingerprint": fp, "files": digests,
                                           "harmonisation": {"method": method, "source": store.fingerprint,
                                                             "fitted_on": centre.digest(),
                                                             "reference": reference.digest()}})
    return open_image_store(root, verify=False)


def reference_summary(reference: Reference) -> pd.DataFrame:
    """The reference as a table: region, variant, pooled ROI mean and SD, pooled pixels kept."""
    return pd.DataFrame([{"region": r, "variant": v, "mean": reference.mean[(r, v)], "sd": reference.sd[(r, v)],
                          "pixels": len(reference.pixels[(r, v)])} for r, v in sorted(reference.mean)])


def training_spacing(store: ImageStore, split: pd.Series) -> float:
    """The training patients' median in-plane pixel spacing (mm): the target of spacing resampling."""
    train = store.index.loc[store.index["patient_id"].map(split).eq("train")]
    return float(np.median(np.r_[train["spacing_row_mm"].to_numpy(), train["spacing_col_mm"].to_numpy()]))


def cut_external_store(cohort: Cohort, train_store: ImageStore, split: pd.Series, cache: Path,
                       resample: bool = False, progress: bool = False) -> ImageStore:
    """The external cohort's image store cut with the run's geometry, resampled to the training spacing when
    ``resample``."""
    return build_image_store(cohort, Geometry(**train_store.manifest["geometry"]), cache, progress=progress,
                             resample_mm=training_spacing(train_store, split) if resample else None)


def harmonised_external_store(cohort: Cohort, train_store: ImageStore, split: pd.Series, cache: Path,
                              intensity: str = "none", resample: bool = False, reference: Reference | None = None,
                              fitted_on: ImageStore | None = None, progress: bool = False) -> ImageStore:
    """The external cohort's store (:func:`cut_external_store`) with its ROI intensities mapped onto the training
    images' by one ``intensity`` map fitted on ``fitted_on``'s pixels (another draw of the same centre, cut the
    same way; default: this cohort's own pixels, which use no outcome)."""
    store = cut_external_store(cohort, train_store, split, cache, resample, progress)
    if intensity == "none":
        return store
    reference = reference or fit_reference(train_store, split.index[split.eq("train")])
    return harmonised_store(store, intensity, fit_reference(fitted_on or store), reference, cache)
