"""Time to DM of the synthetic cohort: a timing signal of its own, late events, and censoring that does not
depend on the outcome.

Whether a patient would ever develop DM is decided by the planted risk (``clinical.draw_cohort``). *When* is
drawn separately: a log-normal time whose median shortens with the nodes' necrosis extent (the planted timing
signal, visible in the CMLN images; patients without nodes have none), with a wide spread so that some
metastases come years later. Follow-up comes from the study's calendar, not from the patient's outcome:
patients enter over an accrual period and the study ends on one calendar date for everyone, so a patient's
follow-up is the study end minus their entry, whatever happens to them (at least three years, as the paper
required). A metastasis after that is not seen: the patient is censored at the end of follow-up like anyone
else, and counts as DM-free in the binary label, which is the event observed within follow-up (``dm`` equals
``dm_event``), as in the paper's data. The latent time is drawn for every patient from a stream of its own, the
same in both scenarios.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

TIME_MODEL = {
    "median_months": 20.0,        # median time to DM at an average timing score (about 12 among the DM patients)
    "log_sd": 1.6,                # total SD of log-months: about a quarter of the metastases after 3 years
    "necrosis_effect": 0.9,       # log-months shorter per SD of the nodes' necrosis extent (the timing signal)
}
ACCRUAL_MONTHS = (0.0, 60.0)      # entry into the study: uniform over five years of accrual
STUDY_END_MONTH = 96.0            # one calendar end of the study for everyone, months after the first entry
FOLLOW_UP_MONTHS = (STUDY_END_MONTH - ACCRUAL_MONTHS[1], STUDY_END_MONTH - ACCRUAL_MONTHS[0])  # 36 to 96


def timing_score(node_necrosis: np.ndarray) -> np.ndarray:
    """The planted timing score: necrosis extent in cohort SDs times its effect (higher: earlier DM)."""
    x = np.asarray(node_necrosis, float)
    sd = x.std() or 1.0
    return TIME_MODEL["necrosis_effect"] * (x - x.mean()) / sd


def draw_times(node_necrosis: np.ndarray, seed: int, signal: bool = True) -> pd.DataFrame:
    """Every patient's latent DM time (if they were to develop DM) and follow-up, drawn without the outcome.

    Returns
    -------
    DataFrame: ``timing_score`` (0 without ``signal``), ``dm_time_true`` (months, latent), ``entry_month`` and
    ``follow_up`` (months: the study end minus the entry), and ``observable`` (the latent time falls within the
    follow-up).
    """
    rng = np.random.default_rng([seed, 2])
    n = len(node_necrosis)
    score = timing_score(node_necrosis) if signal else np.zeros(n)
    residual = np.sqrt(TIME_MODEL["log_sd"] ** 2 - TIME_MODEL["necrosis_effect"] ** 2)
    latent = np.exp(np.log(TIME_MODEL["median_months"]) - score + residual * rng.normal(size=n))
    latent = np.round(np.clip(latent, 0.5, None), 1)
    entry = np.round(rng.uniform(*ACCRUAL_MONTHS, n), 1)
    follow_up = np.round(STUDY_END_MONTH - entry, 1)
    return pd.DataFrame({"timing_score": score, "dm_time_true": latent, "entry_month": entry, "follow_up": follow_up,
                         "observable": latent <= follow_up})


def observe(times: pd.DataFrame, ever: np.ndarray) -> pd.DataFrame:
    """What the study records: ``dm_event`` (DM seen within follow-up) and ``dm_months`` (its time, else the end
    of follow-up), for patients who would (``ever``) or would not develop DM."""
    event = np.asarray(ever).astype(bool) & times["observable"].to_numpy()
    return pd.DataFrame({"dm_event": event.astype(int),
                         "dm_months": np.where(event, times["dm_time_true"], times["follow_up"])})


def calibrated_subset(order: np.ndarray, observable: np.ndarray, target: int) -> np.ndarray:
    """The patients who would develop DM: the first of ``order`` until ``target`` of them are observable (their
    DM falls within follow-up), so that the observed DM count is the target; a boolean mask."""
    ever = np.zeros(len(order), bool)
    if target <= 0:
        return ever
    seen = np.cumsum(np.asarray(observable)[order])
    k = int(np.searchsorted(seen, target)) + 1 if seen[-1] >= target else len(order)
    ever[order[:k]] = True
    return ever


def time_report(times: pd.DataFrame, ever: np.ndarray, linear_risk: np.ndarray) -> dict:
    """What the generation report records of the time model: its settings and what the draw gave (``ever``: who
    would develop DM; the observed DM are those of them whose DM falls within follow-up)."""
    dm = np.asarray(ever).astype(bool)
    t = times.loc[dm, "dm_time_true"]
    score = times.loc[dm, "timing_score"]
    varies = dm.sum() > 2 and score.nunique() > 1  # no timing signal (null scenario): no correlation to report
    rho = stats.spearmanr(score, np.asarray(linear_risk)[dm]).statistic if varies else np.nan
    observed = dm & times["observable"].to_numpy()
    return {"form": "log(months) = log(median) - timing_score + sqrt(log_sd^2 - effect^2) * N(0, 1); "
                    "timing_score = effect * standardised node necrosis extent",
            **TIME_MODEL, "accrual_months": list(ACCRUAL_MONTHS), "study_end_month": STUDY_END_MONTH,
            "follow_up_months": list(FOLLOW_UP_MONTHS),
            "censoring": "administrative: the study end minus the entry, the same rule for every patient",
            "dm_patients": int(dm.sum()), "dm_events_observed": int(observed.sum()),
            "dm_censored_before_event": int((dm & ~observed).sum()),
            "share_within_12_months": round(float((t <= 12).mean()), 3) if len(t) else None,
            "share_13_to_36_months": round(float(((t > 12) & (t <= 36)).mean()), 3) if len(t) else None,
            "share_after_60_months": round(float((t > 60).mean()), 3) if len(t) else None,
            "spearman_timing_score_vs_planted_risk_dm": round(float(rho), 3) if np.isfinite(rho) else None}
