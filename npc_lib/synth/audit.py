"""Where the planted peritumoural signal lies relative to the drawn rectangles.

The rim features (primary-margin infiltration, label 2, for the ``npc`` rectangles;
extranodal extension, label 5, for the ``cmln`` ones) must lie outside the rectangles a
reader draws and inside those rectangles grown by 3 mm. These functions count the planted
pixels inside each from a label map and the ROI table; the generator reports the shares for
every cohort it writes, and ``cohort_rim_shares`` recomputes them from the files alone.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.data.rois import grow_pixels

RIM_LABELS = {"npc": 2, "cmln": 5}


def rim_counts(labels: np.ndarray, rois: pd.DataFrame, grow: int) -> dict[str, dict[str, int]]:
    """Planted rim pixels per region: all of them, inside the drawn rectangles, inside the grown ones.

    Parameters
    ----------
    labels : uint8 array, shape (slices, rows, cols)
        One patient's label map (``synth.phantom.LABELS``).
    rois : DataFrame
        That patient's rectangles: ``slice_index, region, x0, y0, x1, y1`` (half-open pixels).
    grow : int
        Pixels added per side for the grown rectangles (3 mm at the series' spacing).
    """
    _, rows, cols = labels.shape
    out = {}
    for region, value in RIM_LABELS.items():
        total = inside = inside_grown = 0
        rim = labels == value
        for k in np.flatnonzero(rim.any(axis=(1, 2))):
            drawn = np.zeros((rows, cols), bool)
            grown = np.zeros((rows, cols), bool)
            for r in rois[(rois["slice_index"] == k) & (rois["region"] == region)].itertuples():
                drawn[r.y0:r.y1, r.x0:r.x1] = True
                grown[max(0, r.y0 - grow):r.y1 + grow, max(0, r.x0 - grow):r.x1 + grow] = True
            mask = rim[k]
            total += int(mask.sum())
            inside += int((mask & drawn).sum())
            inside_grown += int((mask & grown).sum())
        out[region] = {"pixels": total, "inside_drawn": inside, "inside_grown": inside_grown}
    return out


def shares(counts: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Counts summed over patients → shares inside the drawn and the grown rectangles."""
    out = {}
    for region, c in counts.items():
        n = c["pixels"]
        out[region] = {**c, "share_inside_drawn": round(c["inside_drawn"] / n, 4) if n else None,
                       "share_inside_grown": round(c["inside_grown"] / n, 4) if n else None}
    return out


def add_counts(total: dict, part: dict) -> dict:
    """Sum two results of :func:`rim_counts`."""
    for region, c in part.items():
        t = total.setdefault(region, {k: 0 for k in c})
        for k, v in c.items():
            t[k] += v
    return total


def cohort_rim_shares(cohort_dir: str | Path, peritumour_mm: float = 3.0) -> dict[str, dict]:
    """Rim shares of a generated cohort, from ``masks/``, ``rois.csv`` and the report's spacing."""
    root = Path(cohort_dir)
    spacing = json.loads((root / "generation_report.json").read_text())["pixel_spacing_mm"]
    grow = grow_pixels(peritumour_mm, spacing)
    rois = pd.read_csv(root / "rois.csv", dtype={"patient_id": str})
    total: dict = {}
    for path in sorted((root / "masks").glob("*.npz")):
        pid = path.stem
        part = rois[rois["patient_id"] == pid]
        with np.load(path) as z:
            labels, sops = z["labels"], [str(u) for u in z["sop_instance_uids"]]
        part = part.assign(slice_index=part["sop_instance_uid"].map({u: i for i, u in enumerate(sops)}))
        add_counts(total, rim_counts(labels, part, grow))
    return shares(total)
