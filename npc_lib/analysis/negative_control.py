"""Negative control: the same pipeline on the synthetic ``null`` scenario.

In the ``null`` scenario DM is a random subset of the patients, independent of their images and
stage, so every AUC must come out near 0.5; a clear departure means that information about the
test labels leaks into training or scoring (a split by image rather than by patient,
preprocessing fitted on test data, a model chosen on test data...). The caller generates the
profile's cohort with the same size and seed but ``scenario: null`` (``null_profile`` +
``npc_lib.synth.ensure_cohort``); this module runs the unchanged
pipeline on it (split, image store, backbone features, heads) over a reduced grid (the
profile's ``negative_control.backbones``, every dataset and variant), plus the pixel reference
model. Everything lives under ``RunLayout.negative_control``; the scored table is written to
``evaluation/negative_control.csv``.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import pandas as pd

from npc_lib.atomic import write_csv
from npc_lib.analysis.evaluation import evaluate_runs
from npc_lib.analysis.references import pixel_reference_scores, score_references
from npc_lib.data.rois import Geometry
from npc_lib.layout import RunLayout
from npc_lib.learn.study import grid, prepare, train_grid

log = logging.getLogger(__name__)
COLUMNS = ["dataset", "variant", "backbone", "auc", "auc_low", "auc_high", "patient_auc", "patient_auc_low",
           "patient_auc_high", "test_patients", "test_images"]
PIXEL_REFERENCE = "pixel reference"


def null_profile(profile: dict) -> dict:
    """The profile with its synthetic cohort switched to the ``null`` scenario and the grid
    reduced to ``negative_control.backbones`` (default: the profile's first backbone)."""
    p = copy.deepcopy(profile)
    p["cohort"]["scenario"] = "null"
    p["backbones"] = list((profile.get("negative_control") or {}).get("backbones") or profile["backbones"][:1])
    return p


def run_negative_control(profile: dict, runs_dir: str | Path, null_cohort: str | Path,
                         progress: bool = True) -> pd.DataFrame:
    """Run the null-scenario control for ``profile`` on ``null_cohort`` (the profile's cohort
    regenerated in the ``null`` scenario) and write ``evaluation/negative_control.csv``.

    Returns
    -------
    DataFrame with columns ``COLUMNS``: one row per dataset × variant × backbone (CNN heads, then
    the pixel reference model as backbone ``pixel reference``); AUCs with DeLong 95 % CIs on the
    null cohort's test split, at image and patient level.
    """
    t0 = time.perf_counter()
    layout = RunLayout(Path(runs_dir))
    home = layout.negative_control
    home.root.mkdir(parents=True, exist_ok=True)
    p = null_profile(profile)
    prep = prepare(p, null_cohort, home.root, progress=progress)
    train_grid(p, prep, grid(p), progress=progress)
    cnn = evaluate_runs(home.models, n_boot=0)
    pixel = score_references(pixel_reference_scores(prep.store, prep.split, Geometry.from_profile(p),
                                                    home.cache, datasets=p["datasets"], variants=p["variants"]))
    wide = pixel.pivot_table(index=["dataset", "variant"], columns="level",
                             values=["auc", "auc_low", "auc_high", "patients", "images"], aggfunc="first")
    ref = pd.DataFrame({
        "dataset": [d for d, _ in wide.index], "variant": [v for _, v in wide.index], "backbone": PIXEL_REFERENCE,
        "auc": wide[("auc", "image")].to_numpy(), "auc_low": wide[("auc_low", "image")].to_numpy(),
        "auc_high": wide[("auc_high", "image")].to_numpy(), "patient_auc": wide[("auc", "patient")].to_numpy(),
        "patient_auc_low": wide[("auc_low", "patient")].to_numpy(),
        "patient_auc_high": wide[("auc_high", "patient")].to_numpy(),
        "test_patients": wide[("patients", "image")].to_numpy(), "test_images": wide[("images", "image")].to_numpy()})
    table = pd.concat([cnn.reindex(columns=COLUMNS), ref[COLUMNS]], ignore_index=True)
    write_csv(layout.table("negative_control"), table, float_format="%.6g")
    log.info("negative control (%d rows) in %.1f s", len(table), time.perf_counter() - t0)
    return table
