"""Discrimination, threshold and calibration metrics at image and patient level.

AUC confidence intervals and paired comparisons use DeLong's method in the fast midrank form
(Sun & Xu, IEEE Signal Process. Lett. 2014), which scikit-learn lacks; the results agree
with R's pROC (``ci.auc``, ``roc.test(method="delong", paired=TRUE)``; see the tests).
Scores are oriented so that a higher score means DM (pROC's ``direction = "<"``).
Degenerate inputs raise :class:`MetricError` naming the problem, never a silent number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, f1_score, roc_auc_score, roc_curve


class MetricError(ValueError):
    """A metric is undefined for this input (one class, NaN scores, no images...)."""


def _check(y, *scores, both_classes: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise MetricError("no observations")
    if not np.isin(y, (0, 1)).all():
        raise MetricError(f"labels must be 0/1, got {sorted(set(np.unique(y).tolist()))[:5]}")
    if both_classes and len(np.unique(y)) < 2:
        raise MetricError(f"only one class present ({int(y[0])}): AUC is undefined")
    out = []
    for s in scores:
        s = np.asarray(s, dtype=float)
        if s.shape != y.shape:
            raise MetricError(f"{len(s)} scores for {len(y)} labels")
        if not np.isfinite(s).all():
            raise MetricError(f"{int((~np.isfinite(s)).sum())} NaN/infinite scores")
        out.append(s)
    return y.astype(int), out


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties averaged) in O(n log n)."""
    return stats.rankdata(x, method="average")


def _delong_components(y: np.ndarray, scores: list[np.ndarray], groups=None):
    """AUCs and their covariance matrix for several scores on the same observations: DeLong's,
    or, with ``groups`` (patients), Obuchowski's clustered form (Biometrics 1997), in which a
    patient's images are one unit; with one image per group the two agree."""
    pos, neg = y == 1, y == 0
    m, n = pos.sum(), neg.sum()
    k = len(scores)
    aucs = np.empty(k)
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    for i, s in enumerate(scores):
        tx, ty, tz = _midrank(s[pos]), _midrank(s[neg]), _midrank(s)
        aucs[i] = (tz[pos].sum() - m * (m + 1) / 2) / (m * n)
        v10[i] = (tz[pos] - tx) / n
        v01[i] = 1.0 - (tz[neg] - ty) / m
    if groups is not None:
        return aucs, _clustered_covariance(aucs, v10, v01, np.asarray(groups), pos, neg)
    sx = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((k, k))
    sy = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((k, k))
    return aucs, sx / m + sy / n


def _clustered_covariance(aucs, v10, v01, groups, pos, neg) -> np.ndarray:
    """Obuchowski's covariance of AUCs from per-image placement values summed per cluster."""
    codes, _ = pd.factorize(groups)
    n_groups = codes.max() + 1
    m_i = np.bincount(codes[pos], minlength=n_groups).astype(float)
    n_i = np.bincount(codes[neg], minlength=n_groups).astype(float)
    p_dev = np.stack([np.bincount(codes[pos], weights=v, minlength=n_groups) for v in v10]) - aucs[:, None] * m_i
    q_dev = np.stack([np.bincount(codes[neg], weights=v, minlength=n_groups) for v in v01]) - aucs[:, None] * n_i
    i10, i01, i_all = (m_i > 0).sum(), (n_i > 0).sum(), n_groups
    big_m, big_n = m_i.sum(), n_i.sum()
    s10 = i10 / ((i10 - 1) * big_m) * p_dev @ p_dev.T if i10 > 1 else np.zeros((len(aucs),) * 2)
    s01 = i01 / ((i01 - 1) * big_n) * q_dev @ q_dev.T if i01 > 1 else np.zeros((len(aucs),) * 2)
    s11 = i_all / (i_all - 1) * p_dev @ q_dev.T
    return s10 / big_m + s01 / big_n + (s11 + s11.T) / (big_m * big_n)


@dataclass(frozen=True)
class AucCI:
    auc: float
    low: float
    high: float
    se: float
    method: str


def auc_ci_delong(y, score, level: float = 0.95, groups=None) -> AucCI:
    """AUC with its DeLong confidence interval (normal approximation, clipped to [0, 1]).

    With ``groups`` (one patient ID per observation) the variance is Obuchowski's clustered
    one: use it whenever a patient contributes several images."""
    y, (s,) = _check(y, score)
    if np.ptp(s) == 0:
        raise MetricError("all scores are equal: the model does not discriminate (AUC 0.5 by construction)")
    aucs, cov = _delong_components(y, [s], groups)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = stats.norm.ppf(0.5 + level / 2)
    return AucCI(float(aucs[0]), max(0.0, aucs[0] - z * se), min(1.0, aucs[0] + z * se), se,
                 "DeLong" if groups is None else "DeLong, patient-clustered (Obuchowski)")


@dataclass(frozen=True)
class DelongTest:
    auc1: float
    auc2: float
    z: float
    p: float


def delong_test(y, score1, score2, groups=None) -> DelongTest:
    """Paired two-sided DeLong test of AUC(score1) = AUC(score2) on the same observations
    (patient-clustered with ``groups``, as :func:`auc_ci_delong`)."""
    y, (s1, s2) = _check(y, score1, score2)
    aucs, cov = _delong_components(y, [s1, s2], groups)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if var <= 1e-15:
        if abs(aucs[0] - aucs[1]) < 1e-12:
            return DelongTest(float(aucs[0]), float(aucs[1]), 0.0, 1.0)
        raise MetricError("zero variance of the AUC difference: DeLong test undefined")
    z = float((aucs[0] - aucs[1]) / np.sqrt(var))
    return DelongTest(float(aucs[0]), float(aucs[1]), z, float(2 * stats.norm.sf(abs(z))))


def bootstrap_auc_ci(y, score, groups=None, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> AucCI:
    """Percentile bootstrap CI of the AUC, resampling ``groups`` (patients) within each class.

    With ``groups`` given, whole patients are resampled (stratified by the patient's label) and
    all their observations go with them; resamples with one class are skipped (counted).
    """
    y, (s,) = _check(y, score)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    frame = pd.DataFrame({"g": groups, "y": y, "s": s})
    g_label = frame.groupby("g")["y"].first()
    if (frame.groupby("g")["y"].nunique() > 1).any():
        raise MetricError("a patient has both labels")
    members = {g: idx for g, idx in frame.groupby("g").indices.items()}
    pos_g, neg_g = g_label.index[g_label == 1].to_numpy(), g_label.index[g_label == 0].to_numpy()
    rng = np.random.default_rng(seed)
    if len(members) == len(y):  # one observation per group: resample rows, vectorised
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        idx = np.hstack([rng.choice(pos, (n_boot, len(pos))), rng.choice(neg, (n_boot, len(neg)))])
        ranks = stats.rankdata(s[idx], axis=1)
        m, n = len(pos), len(neg)
        aucs = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    else:
        aucs = []
        for _ in range(n_boot):
            pick = np.concatenate([rng.choice(pos_g, len(pos_g)), rng.choice(neg_g, len(neg_g))])
            idx = np.concatenate([members[g] for g in pick])
            aucs.append(_rank_auc(y[idx], s[idx]))
    lo, hi = np.percentile(aucs, [50 * (1 - level), 100 - 50 * (1 - level)])
    return AucCI(float(roc_auc_score(y, s)), float(lo), float(hi), float(np.std(aucs, ddof=1)),
                 f"bootstrap ({n_boot} patient resamples, stratified)")


def resampled_aucs(y, score, draws: np.ndarray) -> np.ndarray:
    """The Mann–Whitney AUC (ties count one half) of many bootstrap resamples at once.

    Parameters
    ----------
    y : labels (0/1) of the observations
    score : their scores; a non-finite score leaves its observation out (of every resample)
    draws : (resamples, k) positions into ``y`` and ``score``, one resample per row, with repeats

    Returns
    -------
    array (resamples,): each resample's AUC, as the rank-sum identity gives it on the resampled observations
    (NaN where a resample lacks a class).
    """
    y, s, draws = np.asarray(y), np.asarray(score, float), np.atleast_2d(np.asarray(draws))
    weights = np.zeros((draws.shape[0], len(y)))
    np.add.at(weights, (np.repeat(np.arange(draws.shape[0]), draws.shape[1]), draws.ravel()), 1.0)
    keep = np.flatnonzero(np.isfinite(s))
    order = keep[np.argsort(s[keep], kind="mergesort")]
    if not len(order):
        return np.full(draws.shape[0], np.nan)
    ranked = s[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one group per tied score
    w = weights[:, order]
    pos = np.add.reduceat(w * (y[order] == 1), starts, axis=1)
    neg = np.add.reduceat(w * (y[order] == 0), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / den, np.nan)


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC by the rank-sum identity (ties count one half), without input checks."""
    r = stats.rankdata(s)
    m = int(y.sum())
    n = len(y) - m
    return float((r[y == 1].sum() - m * (m + 1) / 2) / (m * n))


def patient_scores(frame: pd.DataFrame, score: str = "probability") -> pd.DataFrame:
    """Mean image probability per patient (columns patient_id, label, score, images)."""
    if frame.empty:
        raise MetricError("no images to aggregate")
    if frame[score].isna().any():
        raise MetricError(f"{int(frame[score].isna().sum())} NaN probabilities")
    agg = frame.groupby("patient_id").agg(label=("label", "first"), n_labels=("label", "nunique"),
                                          **{score: (score, "mean")}, images=(score, "size")).reset_index()
    if (agg["n_labels"] > 1).any():
        raise MetricError(f"patient {agg.loc[agg.n_labels > 1, 'patient_id'].iloc[0]} has images with both labels")
    return agg.drop(columns="n_labels")


def youden_threshold(y, score) -> float:
    """Threshold maximising sensitivity + specificity − 1 (choose it on the training split)."""
    y, (s,) = _check(y, score)
    fpr, tpr, thr = roc_curve(y, s)
    j = tpr - fpr
    best = int(np.argmax(j))
    return float(min(thr[best], 1.0)) if np.isfinite(thr[best]) else float(s.max())


def binary_metrics(y_true, y_pred) -> dict:
    """Accuracy, sensitivity, specificity and F1 of 0/1 predictions."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
    }


def threshold_metrics(y, score, threshold: float) -> dict:
    """Accuracy, sensitivity, specificity, F1 (and counts) of ``score >= threshold``."""
    y, (s,) = _check(y, score, both_classes=False)
    return {"threshold": float(threshold), **binary_metrics(y, (s >= threshold).astype(int))}


def calibration(y, prob, bins: int = 10) -> dict:
    """Brier score, calibration intercept (in the large) and slope with 95 % CIs (Wald for the
    logistic recalibration fits, normal for the Brier score's mean of squared errors), and a
    reliability curve (``bins`` quantile bins)."""
    import statsmodels.api as sm
    from sklearn.calibration import calibration_curve
    y, (p,) = _check(y, prob)
    if (p < 0).any() or (p > 1).any():
        raise MetricError("probabilities must lie in [0, 1]")
    eps = 1e-6
    lp = np.log(np.clip(p, eps, 1 - eps) / (1 - np.clip(p, eps, 1 - eps)))
    slope_fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    citl = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
    frac, mean = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    z = stats.norm.isf(0.025)
    sq = (p - y) ** 2
    brier_se = float(sq.std(ddof=1) / np.sqrt(len(sq))) if len(sq) > 1 else float("nan")
    b0, s0 = float(citl.params[0]), float(citl.bse[0])
    b1, s1 = float(slope_fit.params[1]), float(slope_fit.bse[1])
    return {"brier": float(brier_score_loss(y, p)), "brier_low": float(sq.mean()) - z * brier_se,
            "brier_high": float(sq.mean()) + z * brier_se,
            "intercept": b0, "intercept_low": b0 - z * s0, "intercept_high": b0 + z * s0,
            "slope": b1, "slope_low": b1 - z * s1, "slope_high": b1 + z * s1,
            "curve": pd.DataFrame({"mean_predicted": mean, "observed_fraction": frac})}


def net_benefit(y, prob, thresholds=None) -> pd.DataFrame:
    """Decision curve: net benefit of the model, of treating all and of treating none."""
    y, (p,) = _check(y, prob)
    thresholds = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds)
    n, prev = len(y), y.mean()
    rows = []
    for t in thresholds:
        treat = p >= t
        tp, fp = (treat & (y == 1)).sum(), (treat & (y == 0)).sum()
        w = t / (1 - t)
        rows.append({"threshold": t, "model": tp / n - fp / n * w, "treat_all": prev - (1 - prev) * w,
                     "treat_none": 0.0})
    return pd.DataFrame(rows)
