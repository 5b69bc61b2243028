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


def test_net_benefit_of_treat_all_and_a_perfect_model():
    y = np.array([0, 0, 0, 1])
    nb = net_benefit(y, y.astype(float), thresholds=[0.2])
    assert nb["model"].iloc[0] == pytest.approx(0.25)
    assert nb["treat_all"].iloc[0] == pytest.approx(0.25 - 0.75 * 0.25)
