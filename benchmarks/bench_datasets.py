"""Benchmark: ROI image-store build (images/s, peak RSS) for cohorts of two sizes.

Peak RSS must not grow with the cohort: each size runs in its own process. Usage:
  python benchmarks/bench_datasets.py COHORT_DIR [--profile demo] [--sizes 100 441]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def subset(cohort: Path, n: int, dst: Path) -> Path:
    """A cohort of the first ``n`` patients (DICOM folders symlinked)."""
    dst.mkdir(parents=True)
    clinical = pd.read_csv(cohort / "clinical.csv").head(n)
    clinical.to_csv(dst / "clinical.csv", index=False)
    rois = pd.read_csv(cohort / "rois.csv")
    rois[rois.patient_id.isin(clinical.patient_id)].to_csv(dst / "rois.csv", index=False)
    (dst / "dicom").mkdir()
    for pid in clinical.patient_id:
        (dst / "dicom" / pid).symlink_to((cohort / "dicom" / pid).resolve())
    return dst


def child(cohort: str, profile: str, cache: str) -> None:
    from npc_lib.data.cache import build_image_store
    from npc_lib.data.cohort import load_cohort
    from npc_lib.config import load_profile
    c = load_cohort(cohort, progress=False)
    t0 = time.perf_counter()
    store = build_image_store(c, load_profile(profile).geometry, cache, progress=False)
    wall = time.perf_counter() - t0
    print(json.dumps({"patients": len(c.clinical), "rois": store.manifest["count"], "wall_s": wall,
                      "images_per_s": 2 * store.manifest["count"] / wall,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 441])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(str(a.cohort), a.profile, a.cache)
    tmp = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    try:
        results = []
        for n in a.sizes:
            sub = subset(a.cohort, n, tmp / f"c{n}")
            out = subprocess.run([sys.executable, __file__, str(sub), "--profile", a.profile, "--child",
                                  "--cache", str(tmp / f"cache{n}")], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"patients={r['patients']:4d} ROIs={r['rois']:5d} images(intra+peri)={2 * r['rois']:5d}: "
                  f"{r['wall_s']:6.1f} s, {r['images_per_s']:6.1f} images/s, peak RSS {r['peak_rss_mb']:6.0f} MB")
        if len(results) > 1:
            a_, b_ = results[0], results[-1]
            print(f"RSS ratio {b_['patients']} vs {a_['patients']} patients: {b_['peak_rss_mb'] / a_['peak_rss_mb']:.2f} "
                  f"(cohort ratio {b_['patients'] / a_['patients']:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
