"""Benchmark: how the study's phases grow with the number of patients (demo geometry).

For each cohort size (default 110, 220, 441, 882 patients) a fresh child process runs, on a
temporary folder: synthetic cohort generation, the split and image store, one backbone's features
(default EfficientNet-Lite0, ImageNet), the 8 stacked heads of that backbone, their evaluation
with out-of-fold thresholds, and the negative control's relabelled store and heads. It reports
seconds per phase and the child's peak resident memory; then, per phase, the growth exponent b of
time ≈ a · patients^b fitted by least squares on log–log (goal ≤ 1.1: no worse than linear).
Usage: python benchmarks/bench_scaling.py [--sizes 110 220 441 882] [--backbone efficientnet-lite0]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PHASES = ["cohort", "image store", "features", "heads", "evaluation", "negative control"]


def one_size(patients: int, backbone: str, root: str) -> dict:
    """Run every phase once at ``patients`` (in this process) and return seconds per phase."""
    import resource
    import time
    from pathlib import Path

    from npc_lib.analysis.evaluation import evaluate_runs
    from npc_lib.analysis.hybrid import training_oof
    from npc_lib.stages.negative_control import run_negative_control
    from npc_lib.config import load_profile
    from npc_lib.learn.features import extract_features
    from npc_lib.learn.study import grid, prepare, train_grid
    from npc_lib.layout import RunLayout
    from npc_lib.synth import ensure_cohort

    profile = load_profile("demo", {"cohort.patients": patients, "backbones": [backbone], "model_choice": backbone,
                                    "negative_control": {"backbones": [backbone]}})
    runs = Path(root)
    out, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        out[name] = round(now - t, 2)
        t = now

    cohort = ensure_cohort(profile, None, runs, progress=False)
    lap("cohort")
    prep = prepare(profile, cohort, runs, progress=False)
    lap("image store")
    extract_features(prep.store, backbone, profile, prep.layout.cache)
    lap("features")
    train_grid(profile, prep, grid(profile), progress=False)
    lap("heads")
    layout = RunLayout(runs)
    metas = [run.read_meta() for run in layout.model_runs()]
    oof, _ = training_oof(runs, metas)
    evaluate_runs(layout.models, n_boot=200, oof=oof)
    lap("evaluation")
    run_negative_control(profile, runs, prep, progress=False)
    lap("negative control")
    out["images"] = len(prep.store.index)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[110, 220, 441, 882])
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_size(a.child, a.backbone, a.root)))
        return
    rows = {}
    for n in a.sizes:
        with tempfile.TemporaryDirectory(prefix=f"scaling-{n}-") as tmp:
            res = subprocess.run([sys.executable, __file__, "--child", str(n), "--root", tmp, "--backbone", a.backbone],
                                 capture_output=True, text=True)
            if res.returncode:
                sys.exit(f"{n} patients failed:\n{res.stderr[-3000:]}")
            rows[n] = json.loads(res.stdout.strip().splitlines()[-1])
        r = rows[n]
        print(f"{n:4d} patients, {r['images']:6d} images: " + ", ".join(f"{p} {r[p]:6.1f} s" for p in PHASES) +
              f"; peak {r['peak_rss_mb']:.0f} MB", flush=True)
    sizes = np.array(sorted(rows), float)
    print(f"growth exponent b of time ~ patients^b over {', '.join(str(int(s)) for s in sizes)} patients:")
    for p in PHASES + ["peak_rss_mb"]:
        y = np.array([max(rows[int(s)][p], 1e-3) for s in sizes])
        b = np.polyfit(np.log(sizes), np.log(y), 1)[0]
        ratio = y[-1] / y[0]
        print(f"  {p:17s} b = {b:5.2f}  (x{ratio:5.1f} for x{sizes[-1] / sizes[0]:.0f} patients)"
              + ("" if p == "peak_rss_mb" or b <= 1.1 else "  <- above 1.1"))


if __name__ == "__main__":
    main()
