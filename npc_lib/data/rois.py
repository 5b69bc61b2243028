"""ROI geometry and the eight datasets of the paper (§2.2 of Hua et al. 2023).

Each ROI rectangle gives one image per registered variant (``VARIANT_REGISTRY``); the paper's two
are *intratumour* (the rectangle as drawn) and *intra-peritumour* (the rectangle grown by
``peritumour_mm`` per side, rows and columns separately from PixelSpacing, clipped to the image).
A new variant is one :func:`register_variant` entry here plus its profile line. An image is
produced by cropping, normalising intensities with robust percentiles of that crop only, scaling down (aspect kept)
if larger than the canvas, zero-padding centred to the canvas, and resizing to the model
input. Datasets are views of the ROI index: NPC, CMLN, NPC-CMLN (both) and Max tumour (the
three slices with the largest primary-tumour rectangle per patient).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from npc_lib.config import Geometry
from npc_lib.vocabulary import DATASETS, INTRA_PERITUMOUR, INTRATUMOUR, VARIANT_TITLES

#: regions of each dataset (keyed by the vocabulary's dataset names)
DATASET_REGIONS = dict(zip(DATASETS, (("npc", "cmln"), ("npc",), ("cmln",), ("npc",))))
MAX_TUMOUR_SLICES = 3
DRAWN = ("x0", "y0", "x1", "y1")  # the rectangle as drawn (rois.csv)


@dataclass(frozen=True)
class Variant:
    """A region variant: its name and title, the image-index columns holding its rectangle, how that
    rectangle is derived from the drawn one (``derive(rois, geometry)`` -> int array [n, 4]; None: the
    drawn rectangle itself), and whether it holds the peritumoural margin (the planted reference then
    counts the margin's risk)."""

    name: str
    title: str
    columns: tuple[str, str, str, str]
    derive: Callable[[pd.DataFrame, Geometry], np.ndarray] | None = None
    holds_margin: bool = False


#: name -> :class:`Variant`; the image store holds one image per ROI for every registered variant
VARIANT_REGISTRY: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    """Add a variant (its name and title also enter ``vocabulary.VARIANT_TITLES``, so profiles may name it)."""
    if variant.name in VARIANT_REGISTRY and VARIANT_REGISTRY[variant.name] != variant:
        raise ValueError(f"variant {variant.name!r} is already registered differently")
    VARIANT_REGISTRY[variant.name] = variant
    VARIANT_TITLES[variant.name] = variant.title
    return variant


def unregister_variant(name: str) -> None:
    """Remove a variant added by :func:`register_variant` (the paper's two stay)."""
    if name in (INTRATUMOUR, INTRA_PERITUMOUR):
        raise ValueError(f"{name} is one of the paper's variants")
    VARIANT_REGISTRY.pop(name, None)
    VARIANT_TITLES.pop(name, None)


def grown_boxes(rois: pd.DataFrame, margin_mm: float) -> np.ndarray:
    """Each drawn rectangle grown by ``margin_mm`` per side (from the row's spacings), clipped to the image."""
    boxes = [peritumoural_box((r.x0, r.y0, r.x1, r.y1), r.spacing_row_mm, r.spacing_col_mm, r.rows, r.cols,
                              margin_mm) for r in rois.itertuples()]
    return np.array(boxes, dtype=int).reshape(-1, 4)


def box_columns() -> dict[str, tuple[str, str, str, str]]:
    """Every registered variant -> the index columns holding its rectangle."""
    return {name: v.columns for name, v in VARIANT_REGISTRY.items()}


def add_variant_boxes(rois: pd.DataFrame, geometry: Geometry) -> pd.DataFrame:
    """Add the rectangle columns of every registered variant (needs rows, cols and spacings)."""
    out = rois.copy()
    for v in VARIANT_REGISTRY.values():
        if v.derive is not None:
            out[list(v.columns)] = v.derive(rois, geometry)
    return out


def grow_pixels(mm: float, spacing_mm: float) -> int:
    """Whole pixels covering ``mm`` at ``spacing_mm`` (rounded half up)."""
    return int(math.floor(mm / spacing_mm + 0.5))


def peritumoural_box(box, spacing_row_mm: float, spacing_col_mm: float, rows: int, cols: int,
                     margin_mm: float = 3.0) -> tuple[int, int, int, int]:
    """Grow a half-open (x0, y0, x1, y1) box by ``margin_mm`` per side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = grow_pixels(margin_mm, spacing_col_mm), grow_pixels(margin_mm, spacing_row_mm)
    return max(0, x0 - dx), max(0, y0 - dy), min(cols, x1 + dx), min(rows, y1 + dy)


def normalise(crop: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Map the crop's [low, high] percentiles to [0, 1] (clipped); a flat crop maps to 0."""
    lo, hi = np.percentile(crop, [low, high])
    if hi <= lo:
        return np.zeros_like(crop, dtype=np.float32)
    return np.clip((crop.astype(np.float32) - lo) / (hi - lo), 0, 1)


def pad_to_canvas(img: np.ndarray, canvas: int) -> np.ndarray:
    """Scale down (aspect kept) if larger than the canvas, then zero-pad centred to canvas²."""
    h, w = img.shape
    if h > canvas or w > canvas:
        scale = canvas / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR))
        h, w = img.shape
    out = np.zeros((canvas, canvas), dtype=np.float32)
    top, left = (canvas - h) // 2, (canvas - w) // 2
    out[top:top + h, left:left + w] = img
    return out


def place(crop: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A float crop on the canvas (padded, scaled down if needed) resized to the model input."""
    canvas = pad_to_canvas(crop, geometry.canvas)
    if geometry.input_size != geometry.canvas:
        canvas = np.asarray(Image.fromarray(canvas, mode="F").resize(
            (geometry.input_size, geometry.input_size), Image.BILINEAR))
    return canvas


def crop_shape(height: int, width: int, zoom: tuple[float, float] | None = None) -> tuple[int, int]:
    """A crop's shape after resampling by ``zoom`` (rows, columns; None: unchanged)."""
    if zoom is None:
        return height, width
    return max(1, round(height * zoom[0])), max(1, round(width * zoom[1]))


def resample(crop: np.ndarray, zoom: tuple[float, float] | None) -> np.ndarray:
    """The crop resampled by ``zoom`` (rows, columns), bilinear; None leaves it as it is."""
    if zoom is None:
        return crop
    h, w = crop_shape(*crop.shape, zoom)
    if (h, w) == crop.shape:
        return crop
    return np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))


def roi_image(slice_pixels: np.ndarray, box, geometry: Geometry, zoom: tuple[float, float] | None = None) -> np.ndarray:
    """One stored image (uint8, input_size²) from a slice and a half-open box; ``zoom`` (rows, columns)
    first resamples the crop, e.g. to another pixel spacing (``spacing / target spacing``)."""
    x0, y0, x1, y1 = box
    crop = resample(slice_pixels[y0:y1, x0:x1].astype(np.float32), zoom)
    crop = normalise(crop, geometry.low_percentile, geometry.high_percentile)
    return np.clip(np.round(place(crop, geometry) * 255), 0, 255).astype(np.uint8)


def footprint(height: int, width: int, geometry: Geometry, zoom: tuple[float, float] | None = None) -> np.ndarray:
    """Where a crop of ``height`` × ``width`` pixels lies in its stored image (bool, input_size²): the
    pixels that hold the ROI, not the canvas padding."""
    return place(np.ones(crop_shape(height, width, zoom), np.float32), geometry) >= 0.5


def roi_mask(slice_mask: np.ndarray, box, geometry: Geometry) -> np.ndarray:
    """A binary slice mask mapped exactly as :func:`roi_image` maps the pixels (bool, input_size²)."""
    x0, y0, x1, y1 = box
    return place(slice_mask[y0:y1, x0:x1].astype(np.float32), geometry) >= 0.5


register_variant(Variant(INTRATUMOUR, "Intratumour", DRAWN))
register_variant(Variant(INTRA_PERITUMOUR, "Intra-peritumour", ("px0", "py0", "px1", "py1"),
                         lambda rois, geometry: grown_boxes(rois, geometry.peritumour_mm), holds_margin=True))


def mark_max_tumour(rois: pd.DataFrame, n: int = MAX_TUMOUR_SLICES) -> pd.Series:
    """True for the primary-tumour ROIs on each patient's ``n`` slices with the largest NPC area.

    A slice's area is its largest NPC rectangle; ties go to the more cranial slice.
    """
    npc = rois[rois["region"] == "npc"]
    area = (npc["x1"] - npc["x0"]) * (npc["y1"] - npc["y0"])
    per_slice = (npc.assign(area=area).groupby(["patient_id", "slice_index"])["area"].max().reset_index()
                 .sort_values(["patient_id", "area", "slice_index"], ascending=[True, False, True]))
    top = per_slice.groupby("patient_id").head(n)
    keys = set(zip(top["patient_id"], top["slice_index"]))
    return pd.Series([r.region == "npc" and (r.patient_id, r.slice_index) in keys for r in rois.itertuples()],
                     index=rois.index)


def dataset_mask(index: pd.DataFrame, dataset: str) -> np.ndarray:
    """Boolean selection of the image index that makes up ``dataset`` (a view, not a copy)."""
    if dataset not in DATASET_REGIONS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_REGIONS)}")
    mask = index["region"].isin(DATASET_REGIONS[dataset]).to_numpy().copy()
    if dataset == "Max tumour":
        mask &= index["is_max_tumour"].to_numpy()
    return mask
