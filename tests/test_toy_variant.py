"""A new region variant is one registry entry plus its profile line: a toy variant (the drawn rectangle
grown by 10 mm) runs through the smoke pipeline - image store, features, heads, evaluation - untouched."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from npc_lib.config import load_profile  # noqa: E402
from npc_lib.data.rois import Variant, grown_boxes, register_variant, unregister_variant  # noqa: E402

TOY = Variant("grown-10mm", "Grown by 10 mm", ("gx0", "gy0", "gx1", "gy1"),
              lambda rois, geometry: grown_boxes(rois, 10.0), holds_margin=True)


@pytest.fixture
def toy_variant():
    register_variant(TOY)
    yield TOY
    unregister_variant(TOY.name)


def test_a_registered_toy_variant_runs_through_the_smoke_pipeline(toy_variant, small_cohort, tmp_path):
    from npc_lib.analysis.study_evaluation import evaluate_study
    from npc_lib.learn.study import grid, prepare, train_grid
    from npc_lib.vocabulary import variant_title
    profile = load_profile("smoke", {"variants": ["intratumour", TOY.name], "backbones": ["efficientnet-lite0"],
                                     "model_choice": "efficientnet-lite0", "weights": "none",
                                     "datasets": ["NPC", "CMLN"]})
    assert profile.variants == ("intratumour", TOY.name) and variant_title(TOY.name) == "Grown by 10 mm"
    prep = prepare(profile, small_cohort, tmp_path, progress=False)
    idx = prep.store.index
    # the toy rectangle holds the drawn one and is larger wherever the image leaves room
    assert (idx.gx0 <= idx.x0).all() and (idx.gy0 <= idx.y0).all() and (idx.gx1 >= idx.x1).all()
    assert ((idx.gx1 - idx.gx0) > (idx.px1 - idx.px0)).mean() > 0.5  # 10 mm grows more than the paper's 3 mm
    toy, drawn = prep.store.images(TOY.name), prep.store.images("intratumour")
    assert toy.shape == drawn.shape and not np.array_equal(np.asarray(toy), np.asarray(drawn))
    cells = grid(profile)
    assert len(cells) == 4 and {v for _, v, _ in cells} == {"intratumour", TOY.name}
    train_grid(profile, prep, cells, progress=False)
    ev = evaluate_study(tmp_path, small_cohort, n_boot=0, hybrid_folds=0, a_priori_backbone=profile.model_choice)
    rows = ev.metrics[ev.metrics["variant"] == TOY.name]
    assert len(rows) == 2 and rows["auc"].between(0, 1).all()
    assert set(ev.table2["dataset"]) >= {"NPC", "CMLN"}
    # the planted reference scores the toy variant with the margin's risk (it holds the margin)
    assert ev.planted_table is not None and TOY.name in set(ev.planted_table["variant"])
    # Fig. 3 draws one panel per dataset x variant of the runs, the toy variant's included
    from npc_lib.show import plots
    fig = plots.fig3_roc(ev.predictions, "patient")
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and sum(TOY.name in t for t in titles) == 2, titles
