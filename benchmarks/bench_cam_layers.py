"""Benchmark: Grad-CAM at the last conv layer vs the chosen (≥ 5 × 5) layer, on a finished study.

For every finished run of RUNS (e.g. ``runs/demo`` after ``make demo``) the same seeded test images
are explained twice: at each backbone's last convolutional layer (the classic choice; 3 × 3 or
1 × 1 at small inputs) and at the layer :func:`npc_lib.analysis.gradcam.cam_layer` picks. Prints,
per backbone and layer, the map size, the mean CAM-in-ROI fraction, the ROI's area share, the
enrichment (fraction / area share; 1 = no better than a uniform map) and the seconds per image,
then the ratio chosen / last. Usage:
  python benchmarks/bench_cam_layers.py RUNS [--images 16]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import pandas as pd

    from npc_lib.analysis import gradcam
    from npc_lib.analysis.cam_study import cam_study

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--images", type=int, default=16)
    a = ap.parse_args()
    chosen = gradcam.cam_layer
    tables = {}
    for label, picker in (("last conv", lambda model, spec: spec.last_conv), ("chosen", chosen)):
        gradcam.cam_layer = picker  # the rebuilt models ask this function for their layer
        try:
            res = cam_study(a.runs, n_images=a.images, sanity=False, progress=False)
        finally:
            gradcam.cam_layer = chosen
        t = res["table"].assign(which=label)
        t["seconds_per_image"] = res["seconds_per_image"]
        tables[label] = t
    both = pd.concat(tables.values())
    summary = both.groupby(["backbone", "which"], sort=False).agg(
        layer=("cam_layer", "first"), grid=("cam_grid", "first"), runs=("enrichment", "size"),
        cam_in_roi=("cam_in_roi", "mean"), area_share=("area_share", "mean"),
        enrichment=("enrichment", "mean"), enrichment_min=("enrichment", "min"),
        enrichment_max=("enrichment", "max"), s_per_image=("seconds_per_image", "first"))
    pd.set_option("display.width", 200)
    print(summary.round(3).to_string())
    e = summary["enrichment"].unstack("which")
    ratio = (e["chosen"] / e["last conv"]).rename("enrichment chosen / last")
    print(ratio.round(2).to_string())
    print(f"all backbones: mean enrichment last conv {e['last conv'].mean():.2f}, "
          f"chosen {e['chosen'].mean():.2f} (runs with an undefined 1x1 CAM count as missing)")


if __name__ == "__main__":
    main()
