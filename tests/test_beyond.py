"""Beyond the paper: planted times to DM, Harrell's C, resplits and the time-to-DM chapter."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npc_lib.analysis.resplits import TNM, resplit
from npc_lib.analysis.survival import c_index_ci, harrell_c, km_by_threshold
from npc_lib.synth.clinical import DM_MONTH_BANDS, FOLLOW_UP_MONTHS, draw_cohort


def test_planted_times_follow_the_stated_shares_and_the_risk():
    d = draw_cohort(20000, seed=9)
    c, t = d.clinical, d.truth
    dm = c["dm"] == 1
    months = c.loc[dm, "dm_months"]
    n = dm.sum()
    for (share, lo, hi) in DM_MONTH_BANDS:
        observed = ((months > lo) & (months <= hi)).mean() if lo > 1 else (months <= hi).mean()
        assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / n), (lo, hi, observed)
    # earlier for a higher planted risk
    assert np.corrcoef(t.loc[dm, "linear_risk"].rank(), months.rank())[0, 1] < -0.5
    follow = c.loc[~dm, "dm_months"]
    assert follow.min() >= FOLLOW_UP_MONTHS[0] and follow.max() <= FOLLOW_UP_MONTHS[1]
    # DM itself and the planted AUCs are what they were without times
    again = draw_cohort(20000, seed=9)
    assert again.clinical["dm"].equals(c["dm"]) and again.planted_auc == d.planted_auc


def test_harrell_c_equals_a_brute_force_pair_count():
    rng = np.random.default_rng(4)
    n = 60
    time = rng.integers(1, 40, n).astype(float)  # ties in time on purpose
    event = rng.random(n) < 0.6
    score = np.round(rng.normal(size=n), 1)     # ties in score too
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            if event[i] and time[i] < time[j]:
                den += 1
                num += 1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0
    assert harrell_c(time, event, score) == pytest.approx(num / den)
    assert harrell_c(time, event, -time) == 1.0  # earlier events ranked higher: perfect
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
    from npc_lib.analysis.beyond import PLANTED, beyond_study
    res = beyond_study(smoke_runs, n_splits=2, n_boot=20, jobs=1)
    r = res.resplits
    assert set(r["split"]) == {1, 2} and len(r[r["backbone"] != TNM]) == 2 * 40 * 2
    assert r["auc"].dropna().between(0, 1).all()
    assert len(res.cells) == 8 and res.cells["run_percentile"].between(0, 100).all()
    s = res.survival
    assert len(s) == 40 + 8 + 8 and set(s["backbone"]) >= {TNM, PLANTED}
    ok = s.dropna(subset=["c_index"])
    assert ok["c_index"].between(0, 1).all() and (ok["c_low"] <= ok["c_high"]).all()
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
