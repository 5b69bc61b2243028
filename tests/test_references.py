"""The planted-risk reference, the pixel reference model and model choice on training data only."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from npc_lib.config import load_profile
from npc_lib.analysis.study_evaluation import select_on_training
from npc_lib.analysis.references import (planted_image_scores, pixel_reference_scores, reference_summary,
                                score_references)
from npc_lib.learn.study import prepare


@pytest.fixture(scope="module")
def prepared(small_cohort, tmp_path_factory):
    profile = load_profile("smoke")
    runs = tmp_path_factory.mktemp("refs") / "smoke"
    runs.mkdir(parents=True)
    return profile, prepare(profile, small_cohort, runs, progress=False)


def test_planted_reference_is_what_each_image_shows(prepared, small_cohort):
    _, prep = prepared
    pseudo = planted_image_scores(prep.store, prep.split, small_cohort)
    truth = pd.read_csv(small_cohort / "truth_rois.csv")
    idx = prep.store.index.merge(truth, on=["patient_id", "sop_instance_uid", "region", "x0", "y0", "x1", "y1"])
    for (d, v), frame in pseudo.items():
        view = idx.set_index("image_id").loc[frame["image_id"]]
        expected = view["risk_stage"] + view["risk_core"] + (view["risk_margin"] if v == "intra-peritumour" else 0)
        # the logistic of the planted log-odds: a patient's score is then the mean image probability
        assert np.allclose(frame["probability"].to_numpy(), 1 / (1 + np.exp(-expected.to_numpy())))
        assert set(frame["split"]) <= {"train", "test"}
    assert set(idx.set_index("image_id").loc[pseudo[("CMLN", "intratumour")]["image_id"], "region"]) == {"cmln"}
    # the rim adds to every intra-peritumoural score, never subtracts
    assert (pseudo[("CMLN", "intra-peritumour")]["probability"].to_numpy()
            >= pseudo[("CMLN", "intratumour")]["probability"].to_numpy()).all()
    table = score_references(pseudo)
    assert {"dataset", "variant", "level", "auc", "auc_low", "auc_high", "patients"} <= set(table.columns)
    test_patients = prep.split[prep.split == "test"].index
    npc = table[(table.dataset == "NPC") & (table.level == "patient")]
    assert (npc["patients"] == len(test_patients)).all()  # every patient has a primary tumour


def test_a_cohort_without_ground_truth_has_no_planted_reference(prepared, small_cohort, tmp_path):
    _, prep = prepared
    for name in ("clinical.csv", "rois.csv"):
        shutil.copy(small_cohort / name, tmp_path / name)
    assert planted_image_scores(prep.store, prep.split, tmp_path) is None


def test_pixel_reference_is_fitted_on_training_images_only(prepared):
    """Changing the test labels leaves every test score unchanged; changing training labels does not."""
    profile, prep = prepared
    geometry = profile.geometry
    base = pixel_reference_scores(prep.store, prep.split, geometry, datasets=["NPC-CMLN"])
    store = prep.store
    test = store.index["patient_id"].map(prep.split) == "test"
    flipped_test = type(store)(store.root, store.index.assign(label=np.where(test, 1 - store.index["label"],
                                                                             store.index["label"])), store.manifest)
    other = pixel_reference_scores(flipped_test, prep.split, geometry, datasets=["NPC-CMLN"])
    for key in base:
        assert np.allclose(base[key]["probability"], other[key]["probability"])
    rng = np.random.default_rng(0)
    shuffled = store.index["label"].to_numpy().copy()
    shuffled[~test.to_numpy()] = rng.permutation(shuffled[~test.to_numpy()])
    moved = pixel_reference_scores(type(store)(store.root, store.index.assign(label=shuffled), store.manifest),
                                   prep.split, geometry, datasets=["NPC-CMLN"])
    key = ("NPC-CMLN", "intratumour")
    assert not np.allclose(base[key]["probability"], moved[key]["probability"])
    assert base[key]["probability"].between(0, 1).all()


def test_model_choice_never_looks_at_test_data():
    """Backbone A is best on training patients (out of fold), B would be best on test: A is chosen,
    and the test data are not even passed to the choice."""
    rng = np.random.default_rng(1)
    n = 60
    y = rng.integers(0, 2, n)
    good = 1 / (1 + np.exp(-(y + rng.normal(0, 0.3, n))))
    bad = rng.random(n)
    oof = {("CMLN", "intratumour", b): pd.DataFrame({"patient_id": np.arange(n), "image_id": np.arange(n),
                                                     "label": y, "split": "train",
                                                     "probability": good if b == "a" else bad})
           for b in ("a", "b")}
    metas = [{"config": {"dataset": "CMLN", "variant": "intratumour", "backbone": b}} for b in ("a", "b")]
    sel = select_on_training(metas, oof, folds=3)
    chosen = sel[sel["selected"]]
    assert list(chosen["backbone"]) == ["a"] and chosen["train_oof_auc"].iloc[0] > 0.8
    assert chosen["criterion"].iloc[0].startswith("3-fold out-of-fold")


def test_without_out_of_fold_scores_the_choice_is_a_priori():
    """Finetune runs have no out-of-fold scores: the profile's model_choice is taken, and said."""
    metas = [{"config": {"dataset": "NPC", "variant": "intratumour", "backbone": b}} for b in ("x", "y", "z")]
    reasons = {("NPC", "intratumour", b): "this run is finetune" for b in ("x", "y", "z")}
    sel = select_on_training(metas, {}, reasons, a_priori="y")
    assert list(sel.loc[sel["selected"], "backbone"]) == ["y"]
    assert sel["criterion"].str.contains("a priori: y").all() and sel["train_oof_auc"].isna().all()
    first = select_on_training(metas, {}, reasons)
    assert list(first.loc[first["selected"], "backbone"]) == ["x"]
    assert first["criterion"].str.contains("first backbone of the grid").all()


def test_reference_summary_lines_up_the_levels():
    metrics = pd.DataFrame({"dataset": ["CMLN"] * 3, "variant": ["intratumour"] * 3,
                            "backbone": ["resnet50", "xception", "efficientnet-lite0"],
                            "auc": [0.6, 0.7, 0.95], "patient_auc": [0.65, 0.75, 0.99]})
    pixel = pd.DataFrame({"dataset": ["CMLN"] * 2, "variant": ["intratumour"] * 2, "level": ["image", "patient"],
                          "auc": [0.66, 0.71], "auc_low": [0.6, 0.6], "auc_high": [0.7, 0.8], "patients": [30, 30],
                          "dm_patients": [8, 8]})
    s = reference_summary(metrics, pixel, planted=pixel.assign(auc=[0.8, 0.9]))
    img, pat = s.set_index("level").loc["image"], s.set_index("level").loc["patient"]
    # the paper's four backbones are averaged, as the paper averages; Lite0 stands beside them
    assert img["cnn_mean_auc"] == pytest.approx(0.65) and pat["cnn_mean_auc"] == pytest.approx(0.70)
    assert img["lite0_auc"] == pytest.approx(0.95) and pat["cnn_max_auc"] == pytest.approx(0.75)
    assert img["planted_auc"] == 0.8 and pat["pixel_auc"] == 0.71
    assert json.dumps(s.to_dict("records"), default=float)
