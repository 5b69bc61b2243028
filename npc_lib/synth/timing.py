"""Time to DM of the synthetic cohort: a timing signal of its own, late events and censoring.

Whether a patient develops DM is decided by the planted risk (``clinical.draw_cohort``). *When* is drawn
separately: a log-normal time whose median shortens with the nodes' necrosis extent (the planted timing
signal, visible in the CMLN images; patients without nodes have none), apart from the DM probability, with
a wide spread so that some metastases come years later. Every patient has a follow-up record at the
centre: patients without DM were followed for at least three years (the paper's rule), patients with DM
for 12 to 96 months; a metastasis after the end of the record is known to have happened (``dm`` is 1:
the paper's telephone follow-up) but its date is not, so the patient is censored there (``dm_event`` 0).
The latent time is drawn for every patient from a stream of its own, the same in both scenarios.
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
DM_RECORD_MONTHS = (12.0, 96.0)   # follow-up record of patients with DM: uniform over this range
FOLLOW_UP_MONTHS = (36.0, 96.0)   # follow-up of patients without DM: uniform (at least 3 years, as the paper)


def timing_score(node_necrosis: np.ndarray) -> np.ndarray:
    """The planted timing score: necrosis extent in cohort SDs times its effect (higher: earlier DM)."""
    x = np.asarray(node_necrosis, float)
    sd = x.std() or 1.0
    return TIME_MODEL["necrosis_effect"] * (x - x.mean()) / sd


def draw_times(dm: np.ndarray, node_necrosis: np.ndarray, seed: int, signal: bool = True) -> pd.DataFrame:
    """Latent DM time, follow-up and the observed ``dm_months``/``dm_event`` per patient.

    Returns
    -------
    DataFrame: ``timing_score`` (0 without ``signal``), ``dm_time_true`` (months, latent, every patient),
    ``follow_up`` (months), ``dm_event`` (1: DM observed at ``dm_months``) and ``dm_months``.
    """
    rng = np.random.default_rng([seed, 2])
    dm = np.asarray(dm).astype(bool)
    n = len(dm)
    score = timing_score(node_necrosis) if signal else np.zeros(n)
    residual = np.sqrt(TIME_MODEL["log_sd"] ** 2 - TIME_MODEL["necrosis_effect"] ** 2)
    latent = np.exp(np.log(TIME_MODEL["median_months"]) - score + residual * rng.normal(size=n))
    latent = np.round(np.clip(latent, 0.5, None), 1)
    record = np.round(rng.uniform(*DM_RECORD_MONTHS, n), 1)
    follow = np.round(rng.uniform(*FOLLOW_UP_MONTHS, n), 1)
    follow_up = np.where(dm, record, follow)
    event = dm & (latent <= follow_up)
    return pd.DataFrame({"timing_score": score, "dm_time_true": latent, "follow_up": follow_up,
                         "dm_event": event.astype(int), "dm_months": np.where(event, latent, follow_up)})


def time_report(times: pd.DataFrame, dm: np.ndarray, linear_risk: np.ndarray) -> dict:
    """What the generation report records of the time model: its settings and what the draw gave."""
    dm = np.asarray(dm).astype(bool)
    t = times.loc[dm, "dm_time_true"]
    rho = stats.spearmanr(times.loc[dm, "timing_score"], np.asarray(linear_risk)[dm]).statistic if dm.sum() > 2 else np.nan
    return {"form": "log(months) = log(median) - timing_score + sqrt(log_sd^2 - effect^2) * N(0, 1); "
                    "timing_score = effect * standardised node necrosis extent",
            **TIME_MODEL, "dm_record_months": list(DM_RECORD_MONTHS), "no_dm_follow_up_months": list(FOLLOW_UP_MONTHS),
            "dm_patients": int(dm.sum()), "dm_events_observed": int(times["dm_event"].sum()),
            "dm_censored_before_event": int((dm & (times["dm_event"] == 0)).sum()),
            "share_within_12_months": round(float((t <= 12).mean()), 3) if len(t) else None,
            "share_13_to_36_months": round(float(((t > 12) & (t <= 36)).mean()), 3) if len(t) else None,
            "share_after_60_months": round(float((t > 60).mean()), 3) if len(t) else None,
            "spearman_timing_score_vs_planted_risk_dm": round(float(rho), 3) if np.isfinite(rho) else None}
