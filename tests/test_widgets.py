"""Widgets driven without a kernel: setting a control's value redraws a different figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

from npc_lib.analysis.cam_study import save_cam_examples  # noqa: E402
from npc_lib.show.widgets import CamViewer, RocExplorer, SliceExplorer  # noqa: E402


def _pixels(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def test_slice_explorer_follows_patient_slice_and_boxes(smoke_runs, small_cohort):
    from npc_lib.learn.study import open_prepared
    prep = open_prepared(smoke_runs)
    ex = SliceExplorer(small_cohort, prep.store.index)
    ex.widget()
    first = ex.last_figure.axes[0].get_title()
    n_boxes = len(ex.last_figure.axes[0].patches)
    assert n_boxes >= 2 and n_boxes % 2 == 0  # intra + peri per ROI
    ex.controls["boxes"].value = "intratumour"
    assert len(ex.last_figure.axes[0].patches) == n_boxes // 2
    ex.controls["slice"].value = (ex.controls["slice"].value + 1) % (ex.controls["slice"].max + 1)
    assert ex.last_figure.axes[0].get_title() != first
    other = ex.controls["patient"].options[3]
    ex.controls["patient"].value = other
    assert ex.last_figure.axes[0].get_title().startswith(other)
    assert ex.static() is not None


def test_roc_explorer_redraws_for_the_chosen_backbones():
    rng = np.random.default_rng(0)
    pred = pd.DataFrame({"patient_id": np.repeat([f"P{i}" for i in range(30)], 2), "label": np.repeat(np.arange(30) % 2, 2),
                         "split": "test", "probability": rng.random(60)})
    runs = {("CMLN", "intratumour", b): pred.assign(probability=rng.random(60)) for b in ("resnet50", "xception")}
    ex = RocExplorer(runs)
    ex.widget()
    assert len(ex.last_figure.axes[0].get_legend().get_texts()) == 2
    ex.controls["backbones"].value = ("xception",)
    labels = [t.get_text() for t in ex.last_figure.axes[0].get_legend().get_texts()]
    assert len(labels) == 1 and labels[0].startswith("xception")
    before = labels[0]
    ex.controls["level"].value = "image"
    assert ex.last_figure.axes[0].get_legend().get_texts()[0].get_text() != before


def test_cam_viewer_alpha_and_image_change_the_picture(tmp_path):
    rng = np.random.default_rng(1)
    ex = {"images": rng.integers(0, 255, (3, 16, 16), dtype=np.uint8), "masks": np.zeros((3, 16, 16), bool),
          "labels": np.array([1, 0, 1]), "regions": np.array(["npc", "cmln", "npc"]),
          "cams": {"resnet50": rng.random((3, 16, 16)).astype(np.float32)}}
    path = save_cam_examples({("NPC", "intratumour"): ex}, tmp_path / "cams.npz")
    viewer = CamViewer(path)
    viewer.widget()
    a = _pixels(viewer.last_figure)
    viewer.controls["alpha"].value = 0.0
    b = _pixels(viewer.last_figure)
    viewer.controls["image"].value = 1
    c = _pixels(viewer.last_figure)
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    assert "no DM" in viewer.last_figure.axes[0].get_title()
