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
from npc_lib.data.prepared import open_prepared
from npc_lib.layout import RunLayout
from npc_lib.analysis.negative_control import COLUMNS, PIXEL_REFERENCE, null_alarms
from npc_lib.analysis.null_checks import ALARM_LEVEL
from npc_lib.stages.negative_control import null_profile

TOLERANCE = 0.07
MAX_FALSE_ALARM = 0.01


@pytest.mark.slow
def test_null_control_every_auc_inside_its_bounds(null_control_run):
    """The control of ``tests/jobs/null_control.py`` (1,500 patients; the session runs it in the background)."""
    folder = null_control_run
    table = pd.read_pickle(folder / "table.pkl")
    cohort = RunLayout(folder).synthetic_cohort
    main = open_prepared(folder)
    assert set(COLUMNS + ["selected", "inside", "outside", "accuracy", "sens_spec", "citl_difference"]) <= set(table.columns)
    # the model choice ran on the null, by the training patients' out-of-fold AUC
    sel = pd.read_csv(RunLayout(folder).negative_control.table("model_selection"))
    chosen = table[(table["backbone"] != PIXEL_REFERENCE) & table["selected"].astype(bool)]
    best = sel.sort_values(["train_oof_auc", "backbone"], ascending=[False, True]).groupby(["dataset", "variant"]).head(1)
    assert sorted(map(tuple, chosen[["dataset", "variant", "backbone"]].to_numpy())) == \
        sorted(map(tuple, best[["dataset", "variant", "backbone"]].to_numpy()))
    cnn = table[table["backbone"] != PIXEL_REFERENCE]
    assert len(cnn) == 8 and len(table) == 16
    family = pd.read_csv(folder / "evaluation" / "negative_control_family.csv")
    assert len(family) == 5 and family["inside"].all(), family
    assert not null_alarms(table, family), null_alarms(table, family)

    # the size argument of the module docstring, from the real test counts
    home = RunLayout(folder).negative_control
    split = pd.read_csv(home.split).set_index("patient_id")["split"]
    clinical = pd.read_csv(home.table("null_clinical")).set_index("patient_id")
    rois = pd.read_csv(cohort / "rois.csv")
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

    # every row, CNN and pixel reference, inside its own Bonferroni bounds at both levels, recomputed here at
    # MAX_FALSE_ALARM (the main job's ALARM_LEVEL may differ; the bounds are scaled accordingly)
    widen = norm.isf(MAX_FALSE_ALARM / (2 * 5 * len(table))) / norm.isf(ALARM_LEVEL / (2 * 5 * len(table)))
    for stat, centre in (("auc", None), ("patient_auc", "patient_auc_null"), ("accuracy", "accuracy_null"),
                         ("sens_spec", "sens_spec_null")):
        mid = table[centre] if centre else 0.5
        half = (table[f"{stat}_bound_high"] - mid) * widen
        assert ((table[stat] - mid).abs() <= half + 1e-9).all(), f"negative control alarm on {stat} at 1 %:\n{table}"
    assert (table["auc_bound_low"] < 0.5).all() and (table["auc_bound_high"] > 0.5).all()
    assert (table["patient_auc_bound_high"] - table["patient_auc_bound_low"] < 0.25).all()  # bounds that can bite
    assert (table["citl_difference"].abs() <= table["citl_bound_high"] * widen).all()
    assert cnn["patient_auc_low"].le(cnn["patient_auc"]).all() and cnn["patient_auc_high"].ge(cnn["patient_auc"]).all()
    written = pd.read_csv(folder / "evaluation" / "negative_control.csv")
    assert len(written) == 16 and set(written["backbone"]) == {"efficientnet-b0", PIXEL_REFERENCE}
    # the null labels are not the main labels, the split was drawn from them, the images are the main store's
    main_dm = main.store.index.groupby("patient_id")["label"].first()
    assert (clinical["dm"].reindex(main_dm.index) != main_dm).mean() > 0.2
    assert clinical["dm"].sum() == main_dm.sum()


def test_the_alarm_names_what_left_its_bounds():
    """The banner and the runner's line name each model and statistic outside, and each family check."""
    table = pd.DataFrame({"dataset": ["NPC", "NPC"], "variant": ["intratumour"] * 2, "backbone": ["clean", "leaky"],
                          "auc": [0.5, 0.8], "patient_auc": [0.5, 0.85], "inside": [True, False],
                          "outside": ["", "auc, patient_auc"]})
    family = pd.DataFrame({"check": ["mean z, patient AUC", "chosen model has the top test AUC"],
                           "statistic": [4.2, 1.0], "bound_low": [-0.5, 0.0], "bound_high": [0.5, 3.0],
                           "inside": [False, True]})
    from npc_lib.show.report import negative_control_html
    html = negative_control_html(table, family)
    assert "alarm" in html and "leaky (auc, patient_auc)" in html and "clean" not in html
    assert "family check: mean z, patient AUC" in html and "top test AUC" not in html
    alarms = null_alarms(table, family)
    assert len(alarms) == 2 and alarms[0].startswith("NPC/intratumour/leaky")
    clean = table.iloc[:1]
    assert "passed" in negative_control_html(clean, family.iloc[1:]) and not null_alarms(clean, family.iloc[1:])


def test_an_alarm_ends_the_run_with_a_non_zero_exit(tmp_path, monkeypatch, capsys):
    """npc-study run exits 3 and says why when the control raised its alarm, 0 with --allow-null-alarm."""
    from npc_lib import cli
    summary = {"executed": 1, "skipped": 0, "failed": [], "book": None, "null_alarm": ["NPC/intratumour/x: auc"],
               "stages": [{"name": "negative_control", "status": "ran"}], "seconds": {"total": 2, "cpu": 2}}
    monkeypatch.setattr("npc_lib.runner.run_profile", lambda *a, **k: summary)
    assert cli.main(["run", "--profile", "smoke", "--runs", str(tmp_path / "r"), "--no-book"]) == 3
    assert "NEGATIVE CONTROL ALARM" in capsys.readouterr().out
    assert cli.main(["run", "--profile", "smoke", "--runs", str(tmp_path / "r"), "--no-book", "--allow-null-alarm"]) == 0


def test_a_control_table_left_from_another_run_raises_no_alarm(tmp_path):
    """The run's alarm comes only from a control that this run ran or reused; a table lying in the folder (a
    profile without the control, after a run with one) says nothing."""
    from npc_lib.graph import StageRecord
    from npc_lib.runner import null_alarm_of_run
    layout = RunLayout(tmp_path / "runs")
    layout.table("negative_control").parent.mkdir(parents=True)
    pd.DataFrame({"dataset": ["NPC"], "variant": ["intratumour"], "backbone": ["leaky"], "auc": [0.9],
                  "inside": [False], "outside": ["auc"]}).to_csv(layout.table("negative_control"), index=False)
    assert null_alarm_of_run(layout, {}) == []
    assert null_alarm_of_run(layout, {"negative_control": StageRecord("negative_control", "failed")}) == []
    assert null_alarm_of_run(layout, {"negative_control": StageRecord("negative_control", "ran")})


def test_permutation_sd_matches_mann_whitney_at_patient_level():
    from npc_lib.analysis.null_bounds import permutation_sd
    rng = np.random.default_rng(1)
    n1, n0 = 25, 75
    frame = pd.DataFrame({"patient_id": np.arange(n1 + n0), "label": [1] * n1 + [0] * n0,
                          "probability": rng.random(n1 + n0)})
    sd = permutation_sd(frame, n_perm=20000)
    exact = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))  # no ties
    assert sd["patient"] == pytest.approx(exact, rel=0.03)
    assert sd["image"] == pytest.approx(exact, rel=0.03)  # one image per patient: the same statistic
    clustered = frame.loc[frame.index.repeat(6)].assign(probability=lambda d: d["probability"] + 0.05 * rng.random(len(d)))
    assert permutation_sd(clustered)["image"] > 0.9 * exact  # images of a patient move together: no shrinkage


def test_null_images_are_the_main_images(tmp_path):
    """The premise of the reuse: the null scenario renders every pixel as the main scenario does."""
    from npc_lib.data.cohort import load_cohort
    from npc_lib.synth import SynthConfig, generate_cohort
    main = generate_cohort(tmp_path / "main", SynthConfig(patients=12, matrix=48, slices=4, seed=5), progress=False)
    null = generate_cohort(tmp_path / "null", SynthConfig(patients=12, matrix=48, slices=4, seed=5, scenario="null"),
                           progress=False)
    a, b = load_cohort(tmp_path / "main", progress=False), load_cohort(tmp_path / "null", progress=False)
    assert a.rois.equals(b.rois)
    assert a.clinical.drop(columns=["dm", "dm_months", "dm_event"]).equals(b.clinical.drop(columns=["dm", "dm_months", "dm_event"]))
    assert main["dm"] == null["dm"]
    for pid in a.clinical["patient_id"]:
        np.testing.assert_array_equal(a.load_series(pid).pixels, b.load_series(pid).pixels)


def test_null_clinical_refuses_a_store_of_another_cohort():
    from npc_lib.stages.negative_control import null_clinical
    from npc_lib.errors import NpcError
    from npc_lib.synth.clinical import draw_cohort
    profile = load_profile("smoke")
    c = profile.cohort
    drawn = draw_cohort(c.patients, c.seed, "paper").clinical.set_index("patient_id")["dm"]
    null = null_clinical(profile, drawn)
    assert len(null) == len(drawn) and null["dm"].sum() == drawn.sum()
    assert len(null_clinical(profile, drawn.iloc[5:])) == len(drawn)  # patients without ROI images are absent
    flipped = drawn.copy()
    flipped.iloc[:2] = 1 - flipped.iloc[:2]
    with pytest.raises(NpcError, match="does not hold this profile's synthetic cohort"):
        null_clinical(profile, flipped)


def test_null_profile_switches_the_scenario_and_runs_every_backbone():
    profile = load_profile("demo")
    p = null_profile(profile)
    assert p.cohort.scenario == "null" and profile.cohort.scenario == "paper"
    assert p.backbones == profile.backbones and p.datasets == profile.datasets
    cheaper = null_profile(load_profile("demo", {"negative_control": {"backbones": ["efficientnet-b0"]}}))
    assert cheaper.backbones == ("efficientnet-b0",)
    assert p.cohort.patients == profile.cohort.patients and p.cohort.seed == profile.cohort.seed
