"""Benchmark: what ImageNet pretraining and the input size buy on the demo cohort.

For EfficientNet-Lite0 with its bundled ImageNet weights, Lite0 from random weights and
EfficientNet-B0 from random weights (the paper's backbone, offline), at each input size: the
backbone features of every stored image (extraction time and images/s), the eight head-mode
models on the run's own patient split, and their mean test AUC at image and patient level
(min–max over datasets × variants), with the side of the last feature map (what Grad-CAM draws
on). The image store and split are the demo run's (``npc-study run --profile demo`` first);
everything this script computes goes to a temporary folder. Ratios are against Lite0-random at
the same size (AUC) and against the smallest size (time).
Usage: python benchmarks/bench_pretrained.py [--runs runs/demo] [--sizes 80 128 160]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ARMS = (("efficientnet-lite0", "imagenet", "Lite0-ImageNet"), ("efficientnet-lite0", "none", "Lite0-random"),
        ("efficientnet-b0", "none", "B0-random"))


def main() -> None:
    import pandas as pd
    from npc_lib.analysis.evaluation import evaluate_runs
    from npc_lib.config import load_profile
    from npc_lib.learn.features import extract_features
    from npc_lib.layout import RunLayout
    from npc_lib.learn.study import Prepared, grid, open_prepared, train_grid

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=Path, default=Path("runs/demo"))
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[80, 128, 160])
    a = ap.parse_args()
    base = load_profile(a.profile)
    prep = open_prepared(a.runs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            for name, weights, label in ARMS:
                p = base.replaced({"geometry.input_size": size, "backbones": [name], "weights": weights,
                                   "train.mode": "head", "model_choice": name})
                out = Path(tmp) / f"{label}-{size}"
                here = Prepared(prep.split, prep.store, out)  # the demo's images and split, our own cache
                t0 = time.perf_counter()
                extract_features(prep.store, name, p, here.layout.cache)
                t_feat = time.perf_counter() - t0
                t0 = time.perf_counter()
                train_grid(p, here, grid(p), progress=False)
                t_heads = time.perf_counter() - t0
                m = evaluate_runs(RunLayout(out).models, n_boot=0)
                n_img = 2 * prep.store.manifest["count"]
                rows.append({"size": size, "arm": label, "map": math.ceil(size / 32),
                             "auc_image": m["auc"].mean(), "auc_image_min": m["auc"].min(),
                             "auc_image_max": m["auc"].max(), "auc_patient": m["patient_auc"].mean(),
                             "auc_patient_min": m["patient_auc"].min(), "auc_patient_max": m["patient_auc"].max(),
                             "features_s": t_feat, "img_per_s": n_img / t_feat, "heads_s": t_heads})
                print(f"{label:15s} {size:4d} px: image AUC {rows[-1]['auc_image']:.3f}, patient AUC "
                      f"{rows[-1]['auc_patient']:.3f}, features {t_feat:.0f} s ({n_img / t_feat:.0f} img/s)",
                      flush=True)
    t = pd.DataFrame(rows)
    rand = t[t.arm == "Lite0-random"].set_index("size")
    t["patient_auc_vs_lite0_random"] = t["auc_patient"] - t["size"].map(rand["auc_patient"])
    first = t[t["size"] == min(a.sizes)].set_index("arm")["features_s"]
    t["time_vs_smallest"] = t["features_s"] / t["arm"].map(first)
    pd.set_option("display.width", 200)
    print(t.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
