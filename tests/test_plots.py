"""Figures are built from data and saved as PNG + SVG."""
import numpy as np
import pandas as pd

from npc_lib.show import plots
from npc_lib.analysis.metrics import calibration, net_benefit


def _runs():
    rng = np.random.default_rng(0)
    runs, hist = {}, {}
    for d in plots.DATASET_ORDER:
        for v in plots.VARIANT_ORDER:
            for b in plots.BACKBONE_COLOURS:
                y = np.repeat(rng.integers(0, 2, 40), 2)
                p = 1 / (1 + np.exp(-(y - 0.5 + rng.normal(0, 1, 80))))
                runs[(d, v, b)] = pd.DataFrame({"patient_id": np.repeat(np.arange(40), 2), "label": y,
                                                "probability": p, "split": "test"})
                hist[(d, v, b)] = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5],
                                                "test_loss": [0.7, 0.65, 0.6], "train_accuracy": [0.6, 0.7, 0.8],
                                                "test_accuracy": [0.6, 0.65, 0.7]})
    return runs, hist


def test_figures_are_written(tmp_path):
    runs, hist = _runs()
    planted = {(d, v): pred.assign(probability=pred["label"] + 0.1 * np.arange(len(pred)) % 1)
               for (d, v, b), pred in runs.items() if b == "resnet50"}
    written = plots.save(plots.fig3_roc(runs, "patient", {"planted risk": planted, "pixel reference": None}),
                         tmp_path / "fig3")
    assert [p.suffix for p in written] == [".png", ".svg"] and all(p.stat().st_size > 10_000 for p in written)
    svg = (tmp_path / "fig3.svg").read_text()
    assert "planted risk (AUC" in svg and "CMLN" in svg and "ceiling" not in svg
    plots.save(plots.fig_curves(hist, "loss"), tmp_path / "fig8")
    y = runs[("CMLN", "intratumour", "resnet50")]["label"].to_numpy()
    p = runs[("CMLN", "intratumour", "resnet50")]["probability"].to_numpy()
    plots.save(plots.fig4_tnm_roc(y, (p > 0.5).astype(int), np.round(p * 3)), tmp_path / "fig4")
    plots.save(plots.fig_calibration({"resnet50": calibration(y, p, bins=5)["curve"]}), tmp_path / "cal")
    plots.save(plots.fig_decision_curve({"resnet50": net_benefit(y, p)}), tmp_path / "dca")
    assert len(list(tmp_path.glob("*.png"))) == 5
