"""Another site's folder: a trained run's models scored, unchanged, on a synthetic centre-B cohort."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from npc_lib.cli import main
from npc_lib.synth import SynthConfig, generate_cohort
from conftest import mini_profile


@pytest.fixture(scope="module")
def mini_run_and_centre_b(small_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    profile = mini_profile(root)  # EfficientNet-Lite0 (random weights), NPC and CMLN, both variants
    runs = root / "runs"
    assert main(["train", str(small_cohort), "--profile", str(profile), "--runs", str(runs)]) == 0
    centre_b = root / "centre_b"
    generate_cohort(centre_b, SynthConfig.for_centre("B", patients=24, matrix=56, slices=8, seed=9), progress=False)
    return runs, centre_b


def test_evaluate_scores_a_run_on_another_sites_folder(mini_run_and_centre_b, capsys):
    runs, centre_b = mini_run_and_centre_b
    assert main(["evaluate", "--run", str(runs), "--external-cohort", str(centre_b)]) == 0
    out = capsys.readouterr().out
    assert "outside the training cohort" in out  # B's spacing and intensities differ from A's: said
    table = pd.read_csv(runs / "external" / "centre_b" / "evaluation" / "external.csv")
    models = table[table["backbone"] == "efficientnet-lite0"]
    assert len(models) == 2 * 2 * 2  # NPC and CMLN, two variants, image and patient level
    assert set(table["backbone"]) >= {"efficientnet-lite0", "pixel reference", "planted risk", "TNM stage"}
    clinical = pd.read_csv(centre_b / "clinical.csv")
    pat = models[models["level"] == "patient"]
    # every external patient with ROIs of the dataset is scored; the events are theirs
    rois = pd.read_csv(centre_b / "rois.csv")
    for r in pat.itertuples():
        region = {"NPC": "npc", "CMLN": "cmln"}[r.dataset]
        ids = set(rois.loc[rois["region"] == region, "patient_id"])
        assert r.external_patients == len(ids)
        assert r.external_events == int(clinical.loc[clinical["patient_id"].isin(ids), "dm"].sum())
    assert pat["auc_external"].between(0, 1).all() and pat["auc_internal"].between(0, 1).all()
    assert pat[["calibration_intercept_external", "calibration_slope_external", "brier_external",
                "sensitivity_external", "specificity_external"]].notna().all().all()
    # the internal column is the run's own test AUC (recomputed from its predictions)
    from npc_lib.analysis.metrics import auc_ci_delong, patient_scores
    pred = pd.read_parquet(runs / "models" / "npc__intratumour__efficientnet-lite0" / "predictions.parquet")
    pts = patient_scores(pred[pred["split"] == "test"])
    row = pat[(pat["dataset"] == "NPC") & (pat["variant"] == "intratumour")].iloc[0]
    assert row["auc_internal"] == pytest.approx(auc_ci_delong(pts["label"], pts["probability"]).auc)


def test_the_head_applied_outside_equals_the_run_on_its_own_images(mini_run_and_centre_b):
    """Scoring the training cohort itself as an 'external' folder gives back the run's own probabilities."""
    from npc_lib.learn.external_scores import score_external_cohort
    from npc_lib.layout import RunLayout
    runs, _ = mini_run_and_centre_b
    cohort = RunLayout(runs).read_cohort_ref()["cohort"]
    scores = score_external_cohort(runs, cohort, progress=False, out=RunLayout(runs.parent / "self"))
    own = pd.read_parquet(runs / "models" / "cmln__intra-peritumour__efficientnet-lite0" / "predictions.parquet")
    ext = scores.predictions[("CMLN", "intra-peritumour", "efficientnet-lite0")]
    merged = own.merge(ext, on=["patient_id", "image_id"], suffixes=("", "_ext"))
    assert len(merged) == len(own)
    np.testing.assert_allclose(merged["probability"], merged["probability_ext"], atol=1e-4)


def test_a_cohort_without_a_trained_dataset_is_refused_in_one_line(mini_run_and_centre_b, tmp_path, capsys):
    runs, centre_b = mini_run_and_centre_b
    bad = tmp_path / "no_nodes"
    shutil.copytree(centre_b, bad)
    rois = pd.read_csv(bad / "rois.csv")
    rois[rois["region"] != "cmln"].to_csv(bad / "rois.csv", index=False)
    assert main(["evaluate", "--run", str(runs), "--external-cohort", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no images for CMLN" in err and "the run trained on CMLN, NPC" in err and "Traceback" not in err
