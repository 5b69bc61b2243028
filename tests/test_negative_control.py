"""The negative control: the unchanged pipeline on the null scenario gives AUCs near 0.5.

Sizing. Under the null scenario DM is a random subset of the patients, independent of images and
stage, and the split is stratified by DM; so given everything the models see, the test patients'
labels are a uniformly random assignment, and each patient-level test AUC is a Mann–Whitney
statistic with mean 0.5 and variance at most (n1 + n0 + 1) / (12 n1 n0) (exact without ties, smaller
with ties). The standard deviation of a mean of AUCs is at most the largest of their standard
deviations (whatever their correlation). With 1500 patients, a test fraction of 0.5 and a DM share
of 25.9 %, the smallest dataset (CMLN: N+ patients only, about 88 %) has about n1 = 171 and n0 = 489
test patients: SD <= 0.0257, and 0.07 / 0.0257 = 2.72 SDs, so the mean AUC leaves 0.5 +- 0.07 by
chance with probability below 0.7 % (normal approximation of U, excellent at these sizes). The test
recomputes that bound from the actual counts and fails loudly if a change of the generator made the
test too small to hold it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from npc_lib.config import load_profile
from npc_lib.layout import RunLayout
from npc_lib.synth import ensure_cohort
from npc_lib.analysis.negative_control import COLUMNS, PIXEL_REFERENCE, null_profile, run_negative_control

TOLERANCE = 0.07
MAX_FALSE_ALARM = 0.01


@pytest.mark.slow
def test_null_control_auc_is_near_one_half(tmp_path):
    profile = load_profile("smoke")
    profile["cohort"].update(patients=1500, matrix=48, slices=4, seed=2024)
    profile["split"]["test_fraction"] = 0.5
    profile["weights"] = "none"
    profile["negative_control"] = {"backbones": ["efficientnet-b0"]}
    null_cohort = ensure_cohort(null_profile(profile), None, RunLayout(tmp_path).negative_control.root, progress=False)
    table = run_negative_control(profile, tmp_path, null_cohort, progress=False)
    assert list(table.columns) == COLUMNS
    cnn = table[table["backbone"] != PIXEL_REFERENCE]
    assert len(cnn) == 8 and len(table) == 16

    # the size argument of the module docstring, from the real test counts
    split = pd.read_csv(tmp_path / "negative_control" / "split.csv").set_index("patient_id")["split"]
    clinical = pd.read_csv(tmp_path / "negative_control" / "cohort" / "clinical.csv").set_index("patient_id")
    rois = pd.read_csv(tmp_path / "negative_control" / "cohort" / "rois.csv")
    test = clinical.loc[split[split == "test"].index]
    worst_sd = 0.0
    for region_patients in (set(rois["patient_id"]), set(rois.loc[rois.region == "cmln", "patient_id"])):
        y = test.loc[test.index.isin(region_patients), "dm"]
        n1, n0 = int(y.sum()), int((y == 0).sum())
        worst_sd = max(worst_sd, np.sqrt((n1 + n0 + 1) / (12 * n1 * n0)))
    false_alarm = 2 * norm.sf(TOLERANCE / worst_sd)
    assert false_alarm < MAX_FALSE_ALARM, f"control too small: P(false alarm) <= {false_alarm:.3%}"

    mean_auc = cnn["patient_auc"].mean()
    assert abs(mean_auc - 0.5) <= TOLERANCE, f"null control mean AUC {mean_auc:.3f}: leakage?\n{table}"
    assert cnn["patient_auc_low"].le(cnn["patient_auc"]).all() and cnn["patient_auc_high"].ge(cnn["patient_auc"]).all()
    written = pd.read_csv(tmp_path / "evaluation" / "negative_control.csv")
    assert len(written) == 16 and set(written["backbone"]) == {"efficientnet-b0", PIXEL_REFERENCE}


def test_null_profile_switches_the_scenario_and_reduces_the_grid():
    profile = load_profile("demo")
    p = null_profile(profile)
    assert p["cohort"]["scenario"] == "null" and profile["cohort"]["scenario"] == "paper"
    assert p["backbones"] == ["efficientnet-b0"] and p["datasets"] == profile["datasets"]
    assert p["cohort"]["patients"] == profile["cohort"]["patients"] and p["cohort"]["seed"] == profile["cohort"]["seed"]
