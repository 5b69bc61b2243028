"""Time to DM: concordance, Kaplan–Meier by a training threshold, and a Cox model (stage + image).

Each model's patient-level image score (mean image probability) is read as a risk score for the
time to DM (``dm_months`` of the clinical table: months to DM, or to the last follow-up without
DM; with ``dm_event``, DM patients whose DM came after the record are censored there). On the test
patients: Harrell's C-index with a patient-bootstrap 95 % CI, also among the patients with DM only
(whether the score orders *when*, apart from *whether*); a Kaplan–Meier
split at the *training* patients' median score with the log-rank p; and a Cox model of overall
stage plus the image score (per training SD), fitted on the training patients, with the image
score's hazard ratio and CI and the C-index of its linear predictor on test. Training scores are
out of fold where the study has them; the cut and the Cox model are then applied to the test patients'
scores from the same fold models (their mean), never to the final model's, whose scale differs. Kaplan–Meier, log-rank and Cox come from statsmodels
(``statsmodels.duration``); lifelines would pin pandas below 3.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.data.staging import STAGE_LEVELS, ordinal

SURVIVAL_COLUMNS = ["dataset", "variant", "backbone", "level", "c_index", "c_low", "c_high", "c_index_events",
                    "c_events_low", "c_events_high", "logrank_p", "hr", "hr_low", "hr_high", "hr_adjusted_for",
                    "cox_c_index", "train_patients", "train_events", "test_patients", "test_events",
                    "test_dm_patients", "note"]


def harrell_c(time, event, score) -> float:
    """Harrell's C: among the usable pairs, the share in which the patient whose event came first has the higher
    score (ties in score count one half). A pair is usable when the shorter time ends in an event; at tied times,
    when exactly one of the two is an event (the other, censored at that time, was still free of it); two events
    at the same time are not usable. NaN without usable pairs."""
    t, e, s = (np.asarray(v, float) for v in (time, event, score))
    ev = e > 0
    earlier = ev[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~ev[None, :]))
    n = earlier.sum()
    if n == 0:
        return float("nan")
    concordant = (s[:, None] > s[None, :]) & earlier
    tied = (s[:, None] == s[None, :]) & earlier
    return float((concordant.sum() + 0.5 * tied.sum()) / n)


def c_index_ci(time, event, score, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Harrell's C with a percentile patient-bootstrap interval."""
    t, e, s = (np.asarray(v, float) for v in (time, event, score))
    c = harrell_c(t, e, s)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(t), len(t))
        b = harrell_c(t[i], e[i], s[i])
        if np.isfinite(b):
            boots.append(b)
    if len(boots) < n_boot // 2:
        return c, float("nan"), float("nan")
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return c, float(lo), float(hi)


def km_by_threshold(time, event, score, threshold: float) -> dict:
    """Kaplan–Meier curves of the patients above / at-or-below ``threshold`` and the log-rank p."""
    from statsmodels.duration.survfunc import SurvfuncRight, survdiff
    t, e, s = (np.asarray(v, float) for v in (time, event, score))
    high = s > threshold
    curves = {}
    for name, mask in (("high score", high), ("low score", ~high)):
        if mask.sum():
            sf = SurvfuncRight(t[mask], e[mask])
            last = sf.surv_prob[-1] if len(sf.surv_prob) else 1.0  # flat to the last follow-up
            curves[name] = pd.DataFrame({"months": np.r_[0.0, sf.surv_times, t[mask].max()],
                                         "free_of_dm": np.r_[1.0, sf.surv_prob, last]})
    p = float(survdiff(t, e, high.astype(int))[1]) if 0 < high.sum() < len(high) and e.sum() else float("nan")
    return {"curves": curves, "logrank_p": p, "threshold": float(threshold),
            "n": {"high score": int(high.sum()), "low score": int((~high).sum())}}


def cox_stage_and_score(train: pd.DataFrame, test: pd.DataFrame, with_stage: bool = True) -> dict:
    """Cox model of ``stage`` (ordinal; left out with ``with_stage=False``) and ``score`` (per
    training SD) fitted on ``train`` (columns ``months, event, stage, score``); the score's hazard
    ratio with 95 % CI and the test C-index of the linear predictor."""
    from statsmodels.duration.hazard_regression import PHReg
    sd = float(train["score"].std()) or 1.0
    cols = (["stage"] if with_stage else []) + ["score"]
    scale = np.array([1.0] * with_stage + [sd])
    X = train[cols].to_numpy(float) / scale
    fit = PHReg(train["months"].to_numpy(float), X, status=train["event"].to_numpy(float)).fit(disp=0)
    beta, se = np.asarray(fit.params), np.asarray(fit.bse)
    lp = (test[cols].to_numpy(float) / scale) @ beta
    return {"hr": float(np.exp(beta[-1])), "hr_low": float(np.exp(beta[-1] - 1.96 * se[-1])),
            "hr_high": float(np.exp(beta[-1] + 1.96 * se[-1])),
            "cox_c_index": harrell_c(test["months"], test["event"], lp)}


def survival_row(train: pd.DataFrame | None, test: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                 with_stage: bool = True, test_on_train_scale: pd.DataFrame | None = None) -> dict:
    """One model's row from patient frames with ``months, event, dm, stage, score``: Harrell's C on all
    test patients and among the test patients with DM only (``c_index_events``: does the score order
    *when* DM comes, apart from *whether*?), each with a bootstrap CI; the log-rank p at the training
    median; the Cox hazard ratio per training SD (adjusted for stage unless ``with_stage`` is False; the
    row says which). ``train`` None (no out-of-fold training scores, e.g. fine-tuned runs whose in-sample
    scores would flatter them): the test C-indices only.

    The C-indices use ranks only, so they read ``test`` (the final model's scores). The Kaplan–Meier cut and
    the Cox model carry a value fitted on ``train`` to the test patients, so they read
    ``test_on_train_scale``: the same test patients scored by the models that scored ``train`` (for
    out-of-fold training scores, the mean of the fold models); ``test`` where it is None (the same model
    scored both, as for TNM stage and the planted references)."""
    row = {"test_patients": len(test), "test_events": int(test["event"].sum()), "test_dm_patients": int(test["dm"].sum()),
           "train_patients": len(train) if train is not None else 0,
           "train_events": int(train["event"].sum()) if train is not None else 0,
           "hr_adjusted_for": ("stage" if with_stage else "nothing (stage is the score)") if train is not None else "",
           "note": ""}
    if test["event"].sum() == 0:
        return {**row, "note": "no DM event among the test patients"}
    c, lo, hi = c_index_ci(test["months"], test["event"], test["score"], n_boot=n_boot, seed=seed)
    dm = test[test["dm"] == 1]
    ce, ce_lo, ce_hi = c_index_ci(dm["months"], dm["event"], dm["score"], n_boot=n_boot, seed=seed)
    row.update(c_index=c, c_low=lo, c_high=hi, c_index_events=ce, c_events_low=ce_lo, c_events_high=ce_hi)
    if train is None:
        return {**row, "note": "no out-of-fold training scores: Kaplan–Meier and Cox left out"}
    if train["event"].sum() == 0:
        return {**row, "note": "no DM event among the training patients"}
    applied = test if test_on_train_scale is None else test_on_train_scale
    km = km_by_threshold(applied["months"], applied["event"], applied["score"], float(train["score"].median()))
    row["logrank_p"] = km["logrank_p"]
    try:
        row.update(cox_stage_and_score(train, applied, with_stage))
    except (np.linalg.LinAlgError, ValueError) as exc:
        row["note"] = f"Cox model: {exc}"
    return row


def patient_frame(scores: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """Patients of ``scores`` (``patient_id, probability`` per image) with their mean score,
    ``months``, ``event`` (``dm_event`` where the table has it, else ``dm``), ``dm`` and ordinal ``stage``
    from ``clinical`` (which has ``dm_months``)."""
    pts = scores.groupby("patient_id")["probability"].mean().rename("score")
    c = clinical.set_index("patient_id").loc[pts.index]
    event = c["dm_event"] if "dm_event" in c else c["dm"]
    return pd.DataFrame({"patient_id": pts.index, "score": pts.to_numpy(), "months": c["dm_months"].to_numpy(float),
                         "event": event.to_numpy(int), "dm": c["dm"].to_numpy(int),
                         "stage": c["overall_stage"].map(lambda v: ordinal(v, STAGE_LEVELS)).to_numpy(float)})
