"""The negative control's checks: what a null scenario's results must look like if nothing leaks.

Under the null scenario DM is independent of the images and stage, so given a model's test scores, the
test labels are a random assignment of the DM count among the test patients. For every row (one model,
or the pixel reference) the checks compare, at patient level (image level for the AUC too):

* **AUC** with 0.5, bounds from the permutation SD (:mod:`npc_lib.analysis.null_bounds`);
* **accuracy** and **sensitivity + specificity at the threshold in use** (chosen on the training
  patients' out-of-fold scores) against their exact null distribution: with the predictions fixed, the true
  positives of a random labelling are hypergeometric, and both statistics are linear in them, so their
  two-sided p value is exact (a normal bound on this discrete, skewed count can have a tail several times the
  nominal one at the demo's size) — a threshold chosen on the test labels finds the best cut of noise and lands
  above them;
* **calibration in the large** on the test patients minus the same on the training patients'
  out-of-fold scores, with 0 (normal bound from both estimates' standard errors) — a calibration fitted
  on the test patients removes the model's miscalibration on test but not on training.

Each row's bounds are Bonferroni over every statistic of every row at the family-wise level
:data:`ALARM_LEVEL`, and the family checks share that level again. Leaks that shift every row a little
are found by four family checks: the mean z of each permutation statistic over all rows against its
joint-permutation distribution (every row relabelled with the same permutation of the test patients, so
their correlation is kept), the mean calibration z against a bound that assumes perfectly correlated rows,
and how often the model chosen on training data has the highest test AUC of its dataset and variant
(binomial: one backbone in ``k`` by chance; always, when the choice was made on test).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from npc_lib.analysis.null_bounds import N_PERM, permutation_sd

ALARM_LEVEL = 0.01  # family-wise level of the row checks, and again of the family checks (Bonferroni: a clean run
                    # alarms with probability about 2 % or less; the rate measured by simulation is in
                    # resources/null_alarm_rate.csv); the alarm ends the main job with a non-zero exit
TOL = 1e-9  # rounding slack of a bound check
PERMUTED = ("patient_auc", "accuracy", "sens_spec")
FAMILY_CHECKS = ("mean z, patient AUC", "mean z, accuracy", "mean z, sensitivity + specificity",
                 "mean z, calibration in the large", "chosen model has the top test AUC")


@dataclass
class NullRow:
    """One row of the control: a model's (or the pixel reference's) test images and what the pipeline
    fixed on training data for it."""

    key: tuple            # (dataset, variant, backbone)
    test: pd.DataFrame    # test images: patient_id, label, probability
    threshold: float      # the patient-level threshold in use (chosen on training out-of-fold scores)
    citl_train: float     # calibration in the large on the training patients' out-of-fold scores
    citl_train_se: float  # its standard error
    selected: bool = False
    reference: bool = False  # the pixel reference: checked, never a candidate of the model choice


def citl(y, p) -> tuple[float, float]:
    """Calibration in the large: the intercept ``a`` of ``logit P(y) = a + logit(p)`` (offset fit, as a
    logistic GLM with the logit as offset) and its standard error."""
    y = np.asarray(y, float)
    lp = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    a = 0.0
    for _ in range(50):  # Newton on the score equation sum(y) = sum(sigmoid(a + lp))
        q = 1 / (1 + np.exp(-(a + lp)))
        step = (y.sum() - q.sum()) / max((q * (1 - q)).sum(), 1e-12)
        a += step
        if abs(step) < 1e-10:
            break
    q = 1 / (1 + np.exp(-(a + lp)))
    return float(a), float(1 / np.sqrt(max((q * (1 - q)).sum(), 1e-12)))


def _patients(test: pd.DataFrame) -> pd.DataFrame:
    return test.groupby("patient_id", sort=True).agg(label=("label", "first"), score=("probability", "mean"))


def _permuted(pts: pd.DataFrame, threshold: float, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Each permuted statistic for every label vector (rows of ``labels``)."""
    s = pts["score"].to_numpy(float)
    ranks = stats.rankdata(s)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (labels @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        pred = (s >= threshold).astype(float)
        tp = labels @ pred
        tn = (1 - labels) @ (1 - pred)
        return {"patient_auc": auc, "accuracy": (tp + tn) / labels.shape[1],
                "sens_spec": tp / n_pos + tn / n_neg}


def _observed(pts: pd.DataFrame, threshold: float) -> dict[str, float]:
    y = pts["label"].to_numpy(float)[None, :]
    return {k: float(v[0]) for k, v in _permuted(pts, threshold, y).items()}


def _joint_labels(rows: list[NullRow], n_perm: int, seed: int) -> dict[str, np.ndarray]:
    """One permutation of all test patients' labels per draw; every row reads its own patients' labels."""
    labels = pd.concat([_patients(r.test)["label"] for r in rows]).groupby(level=0).first().sort_index()
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((n_perm, len(labels))), axis=1)
    shuffled = labels.to_numpy(float)[perm]
    return {pid: shuffled[:, i] for i, pid in enumerate(labels.index)}


def check_null(rows: list[NullRow], alpha: float = ALARM_LEVEL, n_perm: int = N_PERM, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every row of a null control against its chance expectation.

    Returns
    -------
    ``(table, family)``: one row per :class:`NullRow` with each statistic, its null mean and bounds and
    whether it lies inside (``inside`` for all of them); and the family checks with their statistic,
    bounds and ``inside``.
    """
    m = len(rows) * (len(PERMUTED) + 2)  # image AUC, the permuted statistics and calibration, every row
    z_row = stats.norm.isf(alpha / (2 * max(m, 1)))
    z_family = stats.norm.isf(alpha / (2 * len(FAMILY_CHECKS)))
    joint = _joint_labels(rows, n_perm, seed)
    out, perm_z, citl_z, perm_auc = [], {k: [] for k in PERMUTED}, [], []
    for r in rows:
        pts = _patients(r.test.dropna(subset=["probability"]))
        obs = _observed(pts, r.threshold)
        labels = np.stack([joint[p] for p in pts.index], axis=1)
        perm = _permuted(pts, r.threshold, labels)
        perm_auc.append(perm["patient_auc"])
        row = {"dataset": r.key[0], "variant": r.key[1], "backbone": r.key[2], "selected": r.selected,
               "reference": r.reference,
               "test_patients": len(pts), "threshold": r.threshold}
        exact = hypergeometric_checks(pts, r.threshold, alpha / max(m, 1))
        for k in PERMUTED:
            mean, sd = float(np.nanmean(perm[k])), float(np.nanstd(perm[k], ddof=1))
            row.update({k: obs[k], f"{k}_null": mean, f"{k}_bound_low": mean - z_row * sd,
                        f"{k}_bound_high": mean + z_row * sd})
            if k in exact:  # the exact distribution: its mean, bounds and two-sided p
                row.update({f"{k}_null": exact[k]["mean"], f"{k}_bound_low": exact[k]["low"],
                            f"{k}_bound_high": exact[k]["high"], f"{k}_p": exact[k]["p"]})
            perm_z[k].append((perm[k] - mean) / sd if sd > TOL else np.zeros_like(perm[k]))
            row[f"{k}_z"] = (obs[k] - mean) / sd if sd > TOL else 0.0
        sd_img = permutation_sd(r.test.dropna(subset=["probability"]), n_perm=n_perm, seed=seed)["image"]
        img_auc = _image_auc(r.test)
        row.update(auc=img_auc, auc_bound_low=0.5 - z_row * sd_img, auc_bound_high=0.5 + z_row * sd_img)
        test_citl, test_se = citl(pts["label"], pts["score"])
        se = float(np.hypot(test_se, r.citl_train_se))
        delta = test_citl - r.citl_train
        row.update(citl_test=test_citl, citl_train=r.citl_train, citl_difference=delta,
                   citl_bound_low=-z_row * se, citl_bound_high=z_row * se)
        citl_z.append(delta / se if se > 0 else 0.0)
        checks = {"auc": row["auc_bound_low"] <= img_auc <= row["auc_bound_high"] or np.isnan(img_auc),
                  "citl": row["citl_bound_low"] <= delta <= row["citl_bound_high"] or np.isnan(delta)}
        # TOL: a threshold outside the test scores makes accuracy and sens + spec the same under every
        # permutation (SD 0); the observed value then equals the null mean up to rounding, never an alarm
        checks.update({k: row[f"{k}_bound_low"] - TOL <= row[k] <= row[f"{k}_bound_high"] + TOL or np.isnan(row[k])
                       for k in PERMUTED if k not in exact})
        checks.update({k: not (exact[k]["p"] < alpha / max(m, 1)) for k in exact})  # exact: the p value decides
        row["outside"] = ", ".join(k for k, ok in checks.items() if not ok)
        row["inside"] = not row["outside"]
        out.append(row)
    table = pd.DataFrame(out)
    return table, _family(table, perm_z, citl_z, z_family, alpha, np.stack(perm_auc) if perm_auc else None)


def hypergeometric_checks(pts: pd.DataFrame, threshold: float, level: float) -> dict:
    """Accuracy and sensitivity + specificity at ``threshold`` against their exact null distribution.

    With the predictions fixed (``k`` of ``n`` patients at or above the threshold) and ``d`` DM patients placed at
    random, the true positives ``TP`` are hypergeometric; accuracy = (2·TP + n − k − d) / n and sens + spec =
    TP/d + (n − k − d + TP)/(n − d) are increasing in ``TP``. Returns, per statistic, the null ``mean``, the
    bounds ``low``/``high`` (the statistic at the ``level``/2 and 1 − ``level``/2 quantiles of ``TP``) and the
    two-sided exact ``p`` (twice the smaller tail, at most 1); empty with one class."""
    y = pts["label"].to_numpy(int)
    n, d = len(y), int(y.sum())
    if d == 0 or d == n:
        return {}
    pred = pts["score"].to_numpy(float) >= threshold
    k = int(pred.sum())
    tp = int((pred & (y == 1)).sum())
    dist = stats.hypergeom(n, d, k)
    p = float(min(1.0, 2 * min(dist.cdf(tp), dist.sf(tp - 1))))
    lo_tp, hi_tp = dist.ppf(level / 2), dist.isf(level / 2)
    f = {"accuracy": lambda t: (2 * t + n - k - d) / n, "sens_spec": lambda t: t / d + (n - k - d + t) / (n - d)}
    return {name: {"mean": float(g(dist.mean())), "low": float(g(lo_tp)), "high": float(g(hi_tp)), "p": p}
            for name, g in f.items()}


def _image_auc(test: pd.DataFrame) -> float:
    t = test.dropna(subset=["probability"])
    y = t["label"].to_numpy(float)
    if y.min() == y.max():
        return float("nan")
    r = stats.rankdata(t["probability"].to_numpy(float))
    n1 = y.sum()
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))


def _family(table: pd.DataFrame, perm_z: dict, citl_z: list, z_family: float, alpha: float,
            perm_auc: np.ndarray | None = None) -> pd.DataFrame:
    """The family checks with two-sided p values and their bounds; a check fails when its p value is below
    ``alpha`` over the number of checks. A mean z over the rows is compared with its joint-permutation
    distribution through that distribution's mean and SD (normal: a mean over many rows; an empirical p
    value could not go below ``2 / (n_perm + 1)``, above the level with a few hundred permutations)."""
    level = alpha / len(FAMILY_CHECKS)
    rows = []
    for name, k in zip(FAMILY_CHECKS[:3], PERMUTED):
        observed = float(table[f"{k}_z"].mean())
        dist = np.nanmean(np.stack(perm_z[k]), axis=0)  # the mean z over rows, per joint permutation
        dist = dist[np.isfinite(dist)]
        centre, sd = (float(dist.mean()), float(dist.std(ddof=1))) if len(dist) > 1 else (0.0, 0.0)
        z = (observed - centre) / sd if sd > TOL else 0.0
        rows.append({"check": name, "statistic": observed, "bound_low": centre - z_family * sd,
                     "bound_high": centre + z_family * sd, "p": float(2 * stats.norm.sf(abs(z)))})
    mean_citl = float(np.mean(citl_z))  # rows may be perfectly correlated: the single-row bound
    rows.append({"check": FAMILY_CHECKS[3], "statistic": mean_citl, "bound_low": -z_family, "bound_high": z_family,
                 "p": float(2 * stats.norm.sf(abs(mean_citl)))})
    rows.append(_top_choice_check(table, level, perm_auc))
    out = pd.DataFrame(rows)
    out["inside"] = ~(out["p"] < level)
    return out


def _top_choice_check(table: pd.DataFrame, level: float, perm_auc: np.ndarray | None = None) -> dict:
    """How often the model chosen on training data has the top test AUC of its dataset × variant, against the
    same count under joint random relabellings of the test patients (``perm_auc``: every row's patient AUC per
    relabelling, the rows' correlation kept: backbones that score alike, variants of one dataset). Without
    relabellings, the count is compared with a Poisson-binomial that treats the backbones as interchangeable
    and the cells as independent (optimistic when they are correlated)."""
    models = table[~table["reference"]]
    cells, top, chances = [], 0, []
    for (_, _), same in models.groupby(["dataset", "variant"]):
        chosen = same[same["selected"]]
        if len(chosen) != 1 or len(same) < 2 or same["patient_auc"].isna().all():
            continue
        at_max = same["patient_auc"] >= same["patient_auc"].max() - 1e-12
        chances.append(at_max.sum() / len(same))
        top += int(at_max[chosen.index[0]])
        cells.append((same.index.to_numpy(), chosen.index[0]))
    out = {"check": FAMILY_CHECKS[4], "statistic": float(top), "bound_low": 0.0, "cells": len(cells),
           "chance": float(np.mean(chances)) if chances else np.nan}
    if not cells:
        return {**out, "bound_high": np.nan, "p": 1.0}
    if perm_auc is not None:
        counts = np.zeros(perm_auc.shape[1])
        for members, chosen in cells:
            block = perm_auc[members]
            counts += np.nan_to_num(perm_auc[chosen]) >= np.nanmax(block, axis=0) - 1e-12
        p = float((1 + (counts >= top).sum()) / (1 + len(counts)))
        return {**out, "bound_high": float(np.quantile(counts, 1 - level)), "p": p,
                "calibration": f"{len(counts)} joint relabellings of the test patients"}
    dist = np.array([1.0])
    for q in chances:  # Poisson-binomial by convolution
        dist = np.convolve(dist, [1 - q, q])
    p = float(dist[top:].sum())
    return {**out, "bound_high": float(np.searchsorted(np.cumsum(dist), 1 - level)), "p": p,
            "calibration": "interchangeable backbones, independent cells"}
