"""Metrics: DeLong against R's pROC, bootstrap, thresholds, calibration, degenerate inputs."""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from npc_lib.analysis.metrics import (MetricError, auc_ci_delong, bootstrap_auc_ci, calibration, delong_test, net_benefit,
                             patient_scores, threshold_metrics, youden_threshold)


def _cases():
    rng = np.random.default_rng(0)
    cases = []
    y = rng.integers(0, 2, 120)
    cases.append(("continuous", y, y + rng.normal(0, 1.2, 120), y * 0.5 + rng.normal(0, 1, 120)))
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1])
    cases.append(("small_with_ties", y, np.array([1, 2, 2, 3, 3, 4, 4, 1, 2, 2, 5, 3.0]),
                  np.array([2, 2, 1, 1, 3, 3, 2, 1, 2, 3, 3, 3.0])))
    y = rng.integers(0, 2, 60)
    cases.append(("ordinal_stage", y, np.clip(y + rng.integers(0, 3, 60), 0, 3).astype(float),
                  (rng.random(60) < 0.4 + 0.3 * y).astype(float)))
    y = np.r_[np.zeros(8), np.ones(5)].astype(int)
    cases.append(("tiny", y, np.r_[rng.normal(0, 1, 8), rng.normal(1, 1, 5)], rng.normal(0, 1, 13)))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def proc_results(tmp_path_factory):
    if shutil.which("Rscript") is None:
        pytest.skip("R is not installed (Debian: apt-get install r-base-core r-cran-proc); CI installs it")
    tmp = tmp_path_factory.mktemp("proc")
    for name, y, s1, s2 in CASES:
        pd.DataFrame({"y": y, "s1": s1, "s2": s2}).to_csv(tmp / f"{name}.csv", index=False)
    script = textwrap.dedent(f"""
        suppressMessages(library(pROC))
        out <- list()
        for (f in list.files("{tmp}", pattern = "csv$", full.names = TRUE)) {{
          d <- read.csv(f)
          r1 <- roc(d$y, d$s1, levels = c(0, 1), direction = "<", quiet = TRUE)
          r2 <- roc(d$y, d$s2, levels = c(0, 1), direction = "<", quiet = TRUE)
          ci <- ci.auc(r1, method = "delong")
          t <- roc.test(r1, r2, method = "delong", paired = TRUE)
          out[[sub(".csv", "", basename(f))]] <- list(auc = as.numeric(auc(r1)), low = ci[1], high = ci[3],
                                                      z = unname(t$statistic), p = t$p.value)
        }}
        cat(jsonlite_free <- paste0("{{", paste(sprintf('"%s": [%.12f, %.12f, %.12f, %.12f, %.12f]', names(out),
          sapply(out, `[[`, "auc"), sapply(out, `[[`, "low"), sapply(out, `[[`, "high"), sapply(out, `[[`, "z"),
          sapply(out, `[[`, "p")), collapse = ", "), "}}"))
    """)
    res = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "there is no package called" in res.stderr:
        pytest.skip("R package pROC is not installed (Debian: r-cran-proc)")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_delong_agrees_with_proc(case, proc_results):
    name, y, s1, s2 = case
    auc, low, high, z, p = proc_results[name]
    ci = auc_ci_delong(y, s1)
    assert ci.auc == pytest.approx(auc, abs=1e-9)
    assert ci.low == pytest.approx(low, abs=1e-6) and ci.high == pytest.approx(high, abs=1e-6)
    t = delong_test(y, s1, s2)
    assert t.z == pytest.approx(z, abs=1e-6) and t.p == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_delong_auc_is_sklearns(case):
    _, y, s1, _ = case
    ci = auc_ci_delong(y, s1)
    assert ci.auc == pytest.approx(roc_auc_score(y, s1)) and ci.low <= ci.auc <= ci.high


def test_degenerate_inputs_are_explicit():
    with pytest.raises(MetricError, match="one class"):
        auc_ci_delong([1, 1, 1], [0.2, 0.4, 0.9])
    with pytest.raises(MetricError, match="NaN"):
        auc_ci_delong([0, 1, 1], [0.2, np.nan, 0.9])
    with pytest.raises(MetricError, match="all scores are equal"):
        auc_ci_delong([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    with pytest.raises(MetricError, match="no images"):
        patient_scores(pd.DataFrame(columns=["patient_id", "label", "probability"]))
    assert delong_test([0, 1, 0, 1], [1, 2, 3, 4], [1, 2, 3, 4]).p == 1.0


def test_patient_scores_are_mean_probabilities():
    f = pd.DataFrame({"patient_id": ["a", "a", "b"], "label": [1, 1, 0], "probability": [0.2, 0.6, 0.3]})
    p = patient_scores(f).set_index("patient_id")
    assert p.loc["a", "probability"] == pytest.approx(0.4) and p.loc["a", "images"] == 2
    f.loc[1, "label"] = 0
    with pytest.raises(MetricError, match="both labels"):
        patient_scores(f)


def test_patient_bootstrap_is_seeded_and_covers_the_auc():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), 4)
    y = np.repeat(rng.integers(0, 2, 60), 4)
    s = y + np.repeat(rng.normal(0, 1, 60), 4) + rng.normal(0, 0.2, 240)  # patient effect: clustered
    a = bootstrap_auc_ci(y, s, groups, n_boot=300, seed=5)
    b = bootstrap_auc_ci(y, s, groups, n_boot=300, seed=5)
    assert a == b and a.low < a.auc < a.high
    image_level = bootstrap_auc_ci(y, s, None, n_boot=300, seed=5)
    assert (a.high - a.low) > (image_level.high - image_level.low)  # clustered data: wider


def test_youden_threshold_is_chosen_on_train_and_applied():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.35, 0.3, 0.8, 0.9])
    t = youden_threshold(y, s)
    assert t == pytest.approx(0.8) or t == pytest.approx(0.3)
    m = threshold_metrics(y, s, 0.3)
    assert m["sensitivity"] == 1.0 and m["specificity"] == pytest.approx(2 / 3)


def test_calibration_of_a_calibrated_model():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < p).astype(int)
    c = calibration(y, p)
    assert c["slope"] == pytest.approx(1.0, abs=0.15) and abs(c["intercept"]) < 0.15
    assert 0 < c["brier"] < 0.25 and len(c["curve"]) == 10


def _miscalibrated(shift, scale, n=20000, seed=5):
    """Predictions whose logits centre on −1 (so the outcome rate is not 0.5) and outcomes drawn from
    ``sigmoid(shift + scale · logit(p))``: a known calibration intercept and slope."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-1.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(shift + scale * lp)))).astype(int)
    return y, 1 / (1 + np.exp(-lp))


def test_calibration_recovers_a_known_shift_and_a_known_slope():
    y, p = _miscalibrated(0.7, 1.0)  # predictions 0.7 logits too low: intercept 0.7, slope 1
    c = calibration(y, p)
    assert c["intercept"] == pytest.approx(0.7, abs=0.1) and c["slope"] == pytest.approx(1.0, abs=0.1)
    assert c["intercept_low"] < 0.7 < c["intercept_high"]
    # without the offset, the intercept would be the outcome's log-odds: far from 0.7 here
    assert abs(np.log(y.mean() / (1 - y.mean())) - 0.7) > 0.5
    y, p = _miscalibrated(0.0, 0.5)  # predictions too extreme: slope 0.5
    c = calibration(y, p)
    assert c["slope"] == pytest.approx(0.5, abs=0.1) and c["slope_low"] < 0.5 < c["slope_high"]


def test_brier_interval_covers_the_true_brier_score_at_its_level():
    """Simulated calibrated models: the true Brier score is E[p(1 − p)]; its 95 % interval covers it in
    about 95 % of samples (between 91 % and 98 % of 400 here)."""
    rng = np.random.default_rng(8)
    p_all = rng.beta(2, 5, 200000)
    truth = float(np.mean(p_all * (1 - p_all)))
    covered = 0
    for _ in range(400):
        p = rng.beta(2, 5, 200)
        y = (rng.random(200) < p).astype(int)
        c = calibration(y, p, bins=5)
        covered += c["brier_low"] <= truth <= c["brier_high"]
    assert 0.91 <= covered / 400 <= 0.98, covered / 400


def test_net_benefit_of_treat_all_and_a_perfect_model():
    y = np.array([0, 0, 0, 1])
    nb = net_benefit(y, y.astype(float), thresholds=[0.2])
    assert nb["model"].iloc[0] == pytest.approx(0.25)
    assert nb["treat_all"].iloc[0] == pytest.approx(0.25 - 0.75 * 0.25)


def _delong_brute_force(y, s):
    """DeLong's variance from its definition, O(m·n) pairs (no ranks, no R)."""
    y, s = np.asarray(y), np.asarray(s, float)
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z)


def test_delong_variance_matches_the_pairwise_definition():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    s = np.round(y + rng.normal(0, 1.2, 80), 1)  # rounded: ties on purpose
    auc, var = _delong_brute_force(y, s)
    ci = auc_ci_delong(y, s)
    assert ci.auc == pytest.approx(auc) and ci.se == pytest.approx(np.sqrt(var), rel=1e-10)


def test_clustered_variance_reduces_to_delong_with_one_image_per_patient():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 60)
    s1, s2 = y + rng.normal(0, 1, 60), y + rng.normal(0, 1.5, 60)
    ids = np.arange(60)
    assert auc_ci_delong(y, s1, groups=ids).se == pytest.approx(auc_ci_delong(y, s1).se, rel=1e-10)
    assert delong_test(y, s1, s2, groups=ids).p == pytest.approx(delong_test(y, s1, s2).p, rel=1e-10)


def _clustered_sample(rng, patients=60, images=8, shift=1.0, patient_sd=1.0, image_sd=0.6):
    """Patients with several images whose scores share a patient effect (strongly correlated)."""
    label = rng.random(patients) < 0.35
    label[:2] = [True, False]
    effect = shift * label + rng.normal(0, patient_sd, patients)
    y = np.repeat(label.astype(int), images)
    s = np.repeat(effect, images) + rng.normal(0, image_sd, patients * images)
    return y, s, np.repeat(np.arange(patients), images)


def test_clustered_interval_covers_the_true_auc_and_the_naive_one_does_not():
    """Coverage by simulation: the patient-clustered 95 % interval covers the true image-level AUC
    93-97 % of the time; DeLong treating every image as independent covers far less."""
    rng = np.random.default_rng(2026)
    # the true image-level AUC: P(score of a DM image > score of a non-DM image), from a huge sample
    y_big, s_big, _ = _clustered_sample(np.random.default_rng(1), patients=200_000, images=1)
    truth = float(roc_auc_score(y_big, s_big))
    runs, hit_clustered, hit_naive = 600, 0, 0
    for _ in range(runs):
        y, s, g = _clustered_sample(rng)
        c, n = auc_ci_delong(y, s, groups=g), auc_ci_delong(y, s)
        hit_clustered += c.low <= truth <= c.high
        hit_naive += n.low <= truth <= n.high
    cov_c, cov_n = hit_clustered / runs, hit_naive / runs
    assert 0.93 <= cov_c <= 0.97, cov_c
    assert cov_n < 0.85, cov_n
