"""Beyond the paper: planted times to DM, Harrell's C, resplits and the time-to-DM chapter."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npc_lib.analysis.resplits import TNM, resplit
from npc_lib.analysis.survival import c_index_ci, harrell_c, km_by_threshold
from npc_lib.synth.clinical import draw_cohort
from npc_lib.synth.timing import FOLLOW_UP_MONTHS, STUDY_END_MONTH


def test_planted_times_carry_a_timing_signal_of_their_own_late_events_and_censoring():
    from scipy import stats
    d = draw_cohort(20000, seed=9)
    c, t = d.clinical, d.truth
    ever = t["dm_ever"] == 1
    latent = t.loc[ever, "dm_time_true"]
    for lo, hi, share in ((0, 12, 0.5), (12, 36, 0.25)):  # the paper's introduction: half in a year, a quarter by three
        observed = ((latent > lo) & (latent <= hi)).mean()
        assert abs(observed - share) < 0.06, (lo, hi, observed)
    assert (latent > 60).mean() > 0.05  # some events come late
    # the timing score orders the times among DM patients, and is related to, but not the same as, the DM risk
    assert stats.spearmanr(t.loc[ever, "timing_score"], latent).statistic < -0.4
    rho = stats.spearmanr(t.loc[ever, "timing_score"], t.loc[ever, "linear_risk"]).statistic
    assert 0.1 < rho < 0.7, rho
    assert d.time_model["spearman_timing_score_vs_planted_risk_dm"] == pytest.approx(rho, abs=1e-3)
    # the binary label is the DM observed within follow-up, at the paper's share; a later DM is censored
    assert (c["dm"] == c["dm_event"]).all() and c["dm"].sum() == round(20000 * 114 / 441)
    censored = ever & (c["dm_event"] == 0)
    assert 0.05 < censored.sum() / ever.sum() < 0.3
    assert (c.loc[censored, "dm_months"] < t.loc[censored, "dm_time_true"]).all()
    assert (c.loc[c["dm"] == 1, "dm_months"] == t.loc[c["dm"] == 1, "dm_time_true"]).all()
    assert c.loc[c["dm"] == 0, "dm_months"].between(*FOLLOW_UP_MONTHS).all()
    assert (t["follow_up"] == STUDY_END_MONTH - t["entry_month"]).all()
    # DM itself and the planted AUCs are what they are without times
    again = draw_cohort(20000, seed=9)
    assert again.clinical["dm"].equals(c["dm"]) and again.planted_auc == d.planted_auc


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_censoring_does_not_depend_on_the_outcome(seed):
    """The follow-up (latent censoring time) of the patients who would develop DM and of those who would not is
    drawn from one distribution: a Kolmogorov–Smirnov test finds no difference, seed after seed. (In generator
    4 DM patients' records ran 12–96 months against 36–96 for the others.)"""
    from scipy import stats
    t = draw_cohort(6000, seed=seed).truth
    ever = t["dm_ever"] == 1
    assert stats.ks_2samp(t.loc[ever, "follow_up"], t.loc[~ever, "follow_up"]).pvalue > 0.01


def test_the_c_index_among_dm_patients_asks_when_not_whether():
    """Hand-worked: three DM patients (two observed events, one censored) and two without DM."""
    from npc_lib.analysis.survival import survival_row
    test = pd.DataFrame({"months": [5.0, 20.0, 30.0, 60.0, 70.0], "event": [1, 1, 0, 0, 0], "dm": [1, 1, 1, 0, 0],
                         "stage": [3, 3, 3, 3, 3], "score": [0.2, 0.9, 0.5, 0.1, 0.05]})
    row = survival_row(None, test, n_boot=20)
    # among DM: comparable pairs (earlier time an event): (5 vs 20), (5 vs 30), (20 vs 30): concordant only the last
    assert row["c_index_events"] == pytest.approx(1 / 3)
    # all patients: the 3 pairs above plus each event against the two without DM (4 pairs, all concordant)
    assert row["c_index"] == pytest.approx(5 / 7)
    assert row["test_events"] == 2 and row["test_dm_patients"] == 3 and "out-of-fold" in row["note"]
    assert pd.isna(row.get("hr", np.nan))  # no Cox model without out-of-fold training scores


def test_the_kaplan_meier_cut_and_the_cox_model_meet_test_scores_on_the_training_scores_scale():
    """The cut (training median) and the Cox model are fitted on out-of-fold scores; applied to a final model
    whose scores sit on another scale (here all above the cut) they would put every test patient in one group.
    They read the test patients' scores from the fold models instead, so the final model's scale changes nothing
    (its ranks feed the C-indices)."""
    from npc_lib.analysis.survival import survival_row
    rng = np.random.default_rng(0)
    n = 120

    def frame(score):
        months = rng.uniform(6, 90, n)
        return pd.DataFrame({"months": months, "event": (rng.random(n) < 0.3).astype(int), "dm": 0,
                             "stage": rng.integers(1, 5, n).astype(float), "score": score})
    train = frame(rng.uniform(0.1, 0.5, n))
    folds = frame(rng.uniform(0.1, 0.5, n))
    folds["dm"] = folds["event"]
    final = folds.assign(score=0.5 + folds["score"])   # the final model: same order, another scale
    rows = [survival_row(train, t, n_boot=10, test_on_train_scale=folds) for t in (folds, final)]
    for key in ("logrank_p", "hr", "hr_low", "hr_high", "cox_c_index", "c_index"):
        assert rows[0][key] == pytest.approx(rows[1][key], nan_ok=True), key
    assert np.isfinite(rows[0]["logrank_p"])  # both groups exist: the cut splits the fold models' scores


def test_harrell_c_equals_a_brute_force_pair_count():
    rng = np.random.default_rng(4)
    n = 60
    time = rng.integers(1, 40, n).astype(float)  # ties in time on purpose
    event = rng.random(n) < 0.6
    score = np.round(rng.normal(size=n), 1)     # ties in score too
    num = den = 0.0  # Harrell's definition, pair by unordered pair
    for i in range(n):
        for j in range(i + 1, n):
            if time[i] == time[j]:
                if event[i] == event[j]:
                    continue  # two events (or two censorings) at the same time: not usable
                first, other = (i, j) if event[i] else (j, i)  # the censored one was still free of it then
            else:
                first, other = (i, j) if time[i] < time[j] else (j, i)
                if not event[first]:
                    continue  # the shorter time is censored: not usable
            den += 1
            num += 1.0 if score[first] > score[other] else 0.5 if score[first] == score[other] else 0.0
    assert harrell_c(time, event, score) == pytest.approx(num / den)
    # tied times, worked by hand: the event at 5 against the censoring at 5 is usable (the event came first),
    # the two events at 7 are not; (5 event, 7 events) and (5 event vs 5 censored) give 3 usable pairs
    t, e = np.array([5.0, 5.0, 7.0, 7.0]), np.array([1, 0, 1, 1])
    assert harrell_c(t, e, np.array([0.9, 0.1, 0.5, 0.4])) == pytest.approx(1.0)
    assert harrell_c(t, e, np.array([0.1, 0.9, 0.5, 0.4])) == pytest.approx(0.0)
    assert harrell_c(t, e, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert harrell_c(t, e, np.array([0.9, 0.1, 0.95, 0.96])) == pytest.approx(1 / 3)  # only the tied pair agrees
    assert harrell_c(time, event, -time + 0.1 * event) == 1.0  # earlier (or tied but observed) events ranked higher
    c, lo, hi = c_index_ci(time, event, score, n_boot=100)
    assert lo <= c <= hi


def test_kaplan_meier_split_separates_a_real_difference():
    rng = np.random.default_rng(2)
    score = rng.random(200)
    time = np.where(score > 0.5, rng.exponential(10, 200), rng.exponential(60, 200))
    event = np.ones(200)
    km = km_by_threshold(time, event, score, 0.5)
    assert km["logrank_p"] < 1e-6 and set(km["curves"]) == {"high score", "low score"}
    high = km["curves"]["high score"]
    assert high["free_of_dm"].iloc[0] == 1.0 and high["free_of_dm"].is_monotonic_decreasing


def test_resplits_are_patient_disjoint_stratified_and_differ():
    d = draw_cohort(300, seed=1).clinical
    a, b = resplit(d, 1, 42, 0.2), resplit(d, 2, 42, 0.2)
    for s in (a, b):
        assert set(s.index) == set(d["patient_id"]) and s.index.is_unique  # each patient on one side
        test = d.set_index("patient_id").loc[s[s == "test"].index, "dm"]
        assert abs(test.mean() - d["dm"].mean()) < 0.02 and abs(len(test) - 60) <= 1
    assert (a != b).any()


@pytest.mark.slow
def test_beyond_study_on_the_smoke_runs(smoke_runs, small_cohort, tmp_path):
    import shutil
    from npc_lib.analysis.beyond import PLANTED, PLANTED_TIMING, beyond_study
    res = beyond_study(smoke_runs, n_splits=2, n_boot=20, jobs=1)
    r = res.resplits
    assert set(r["split"]) == {1, 2} and len(r[r["backbone"] != TNM]) == 2 * 40 * 2
    assert r["auc"].dropna().between(0, 1).all()
    assert len(res.cells) == 8 and res.cells["run_percentile"].between(0, 100).all()
    # worked by hand: split 1's TNM AUC on NPC test patients, recomputed from the split and the clinical table
    from sklearn.metrics import roc_auc_score
    from npc_lib.analysis.survival import harrell_c
    clinical = pd.read_csv(small_cohort / "clinical.csv", dtype={"patient_id": str})
    split1 = resplit(clinical, 1, 42, 0.2)
    preds = pd.read_parquet(smoke_runs / "models" / "npc__intratumour__resnet50" / "predictions.parquet")
    npc_patients = set(preds["patient_id"])
    test = clinical[clinical["patient_id"].map(split1).eq("test") & clinical["patient_id"].isin(npc_patients)]
    want = roc_auc_score(test["dm"], test["overall_stage"].eq("IV").astype(int))
    got = r[(r["split"] == 1) & (r["backbone"] == TNM) & (r["dataset"] == "NPC") & (r["variant"] == "intratumour")]
    assert got["auc"].iloc[0] == pytest.approx(want)
    s = res.survival
    assert len(s) == 40 + 8 + 8 + 1 and set(s["backbone"]) >= {TNM, PLANTED, PLANTED_TIMING}
    ok = s.dropna(subset=["c_index"])
    assert ok["c_index"].between(0, 1).all() and (ok["c_low"] <= ok["c_high"]).all()
    # one model's C-index by brute force from its test predictions and the clinical table
    row = s[(s["dataset"] == "NPC") & (s["variant"] == "intratumour") & (s["backbone"] == "resnet50")].iloc[0]
    pts = preds[preds["split"] == "test"].groupby("patient_id")["probability"].mean()
    c = clinical.set_index("patient_id").loc[pts.index]
    assert row["c_index"] == pytest.approx(harrell_c(c["dm_months"], c["dm_event"], pts.to_numpy()))
    assert row["test_events"] == int(c["dm_event"].sum()) and row["test_dm_patients"] == int(c["dm"].sum())
    assert row["hr_adjusted_for"] == "stage" and s.loc[s["backbone"] == TNM, "hr_adjusted_for"].str.startswith("nothing").all()
    # without dm_months the chapter is skipped with a note, the resplits still run
    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort, cohort)
    clinical = pd.read_csv(cohort / "clinical.csv").drop(columns="dm_months")
    clinical.to_csv(cohort / "clinical.csv", index=False)
    bare = beyond_study(smoke_runs, cohort, n_splits=0)
    assert bare.survival is None and any("dm_months" in n for n in bare.notes)


@pytest.mark.parametrize("value,words", [("-3", "must be a non-negative number"), ("soon", "is not a number"),
                                         ("", "is not a number")])
def test_validate_names_the_patient_and_row_of_a_bad_time(cohort_copy, value, words):
    from npc_lib.data.cohort import load_clinical
    from npc_lib.errors import CohortError
    path = cohort_copy / "clinical.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[2, "dm_months"] = value
    table.to_csv(path, index=False)
    with pytest.raises(CohortError) as err:
        load_clinical(path)
    msg = str(err.value)
    assert table.loc[2, "patient_id"] in msg and "line 4" in msg and words in msg, msg


def test_the_corrected_resampled_t_does_not_shrink_with_more_resplits_of_the_same_data():
    """Two scores of 300 patients with no real difference; the same patients resplit 20 and then 100 times (test
    fraction 0.2), the AUC difference taken on each split's test patients: the naive paired t-test's p value falls
    as the splits multiply (their test sets overlap: the differences are not independent), Nadeau and Bengio's
    corrected one does not."""
    from sklearn.metrics import roc_auc_score

    from npc_lib.analysis.pretraining_resplits import corrected_resampled_t
    naive_falls, corrected_holds = 0, 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = 300
        y = (rng.random(n) < 0.3).astype(int)
        a, b = rng.normal(size=n) + 0.3 * y, rng.normal(size=n) + 0.3 * y  # the same signal: no real difference

        def diffs(splits: int) -> np.ndarray:
            out = []
            for r in range(1, splits + 1):
                split_rng = np.random.default_rng([seed, r])
                test = np.zeros(n, bool)
                for c in (0, 1):  # stratified by outcome, a fifth of each class tested
                    members = np.flatnonzero(y == c)
                    test[split_rng.choice(members, round(0.2 * len(members)), replace=False)] = True
                out.append(roc_auc_score(y[test], a[test]) - roc_auc_score(y[test], b[test]))
            return np.array(out)
        few, many = corrected_resampled_t(diffs(20), 0.2), corrected_resampled_t(diffs(100), 0.2)
        naive_falls += many["p_naive"] < 0.6 * few["p_naive"]
        corrected_holds += 0.5 < many["p_corrected"] / few["p_corrected"] < 2 and many["p_corrected"] > 0.05
    assert naive_falls >= 3 and corrected_holds >= 4, (naive_falls, corrected_holds)
