"""Benchmark: what the references and the training-only model choice add to a prepared study.

Budget (demo profile, 2 cores): the main job with the negative control and the pixel reference
stays <= 25 min and <= 4 GB peak RSS. This script prints, on an already prepared runs folder
(default ``runs/demo``, after ``make demo``), the wall time and peak RSS of

* the baseline: refitting the 8 heads of one backbone on its cached features (what one backbone
  of the head grid costs once its features exist),
* the pixel reference: texture features of every stored image (uncached) and the 8 logistic fits,
* the planted-risk reference,
* the out-of-fold training scores used to choose models for calibration and decision curves
  (one run, uncached),

each as a ratio to the baseline measured in the same process.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from npc_lib.config import load_profile
from npc_lib.analysis.references import pixel_reference_scores, planted_image_scores, store_features
from npc_lib.learn.study import grid, open_prepared, train_grid
from npc_lib.layout import RunLayout


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--runs", default=None, help="prepared runs folder (default runs/<profile>)")
    ap.add_argument("--backbone", default="efficientnet-b0")
    a = ap.parse_args()
    profile = load_profile(a.profile)
    runs = Path(a.runs or f"runs/{profile.name}")
    prep = open_prepared(runs)
    layout = RunLayout(runs)
    cohort = layout.read_cohort_ref()["cohort"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-refs-"))
    try:
        copy = RunLayout(scratch)
        shutil.copytree(layout.cache, copy.cache, dirs_exist_ok=True, ignore=shutil.ignore_patterns("pixel-features-*"))
        copy.split.write_bytes(layout.split.read_bytes())
        copy.cohort_ref.write_bytes(layout.cohort_ref.read_bytes())
        local = type(prep)(prep.split, prep.store, scratch)
        _, base = _timed(lambda: train_grid(profile, local, grid(profile, backbones=[a.backbone]), progress=False))
        geometry = profile.geometry
        _, t_feat = _timed(lambda: store_features(prep.store, geometry))
        _, t_pixel = _timed(lambda: pixel_reference_scores(prep.store, prep.split, geometry, copy.cache))
        _, t_planted = _timed(lambda: planted_image_scores(prep.store, prep.split, cohort))
        from npc_lib.analysis.hybrid import oof_patient_scores
        d, v = profile.datasets[0], profile.variants[-1]
        _, t_oof = _timed(lambda: oof_patient_scores(scratch, copy.model(d, v, a.backbone).root, folds=5))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    n = len(prep.store.index)
    print(f"{profile.name}: {n} ROI images x 2 variants; baseline = 8 heads of {a.backbone} on cached features")
    rows = [("baseline: 8 head fits", base), ("pixel features (all images, both variants)", t_feat),
            ("pixel reference: features + 8 logistic fits", t_pixel), ("planted-risk reference", t_planted),
            ("out-of-fold scores, one run (5 head fits)", t_oof)]
    for name, t in rows:
        print(f"  {name:46s} {t:7.1f} s   x{t / base:5.2f} of baseline")
    print(f"  projected model choice for the 32-run grid: {32 * t_oof:.0f} s (32 runs x 5 folds)")
    print(f"  peak RSS {_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
