"""How far from 0.5 a null AUC may fall by chance, for each AUC of the negative control.

Under the null scenario DM is a random subset of the patients, independent of the images, so
given a model's test scores the test labels are a random assignment of the DM count among the
test patients. The permutation distribution of an AUC (image level: every image of a patient
carries the patient's label; patient level: one mean score per patient) follows from the scores
alone. Its mean is 0.5; its standard deviation is estimated from ``n_perm`` relabellings, and the
bound is 0.5 ± z·SD with z for a two-sided level ``alpha / m`` (Bonferroni over the ``m`` null
AUCs of a run; normal approximation, as Mann–Whitney statistics are near normal at these sizes).
An AUC outside its bound is an alarm: at most ``alpha`` of clean runs raise one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

ALPHA = 0.05
N_PERM = 2000


def _auc_from_rank_sums(rank_sums: np.ndarray, n_pos: np.ndarray, n_total: int) -> np.ndarray:
    n_neg = n_total - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rank_sums - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def permutation_sd(test: pd.DataFrame, score: str = "probability", n_perm: int = N_PERM,
                   seed: int = 0) -> dict[str, float]:
    """SD of the image- and patient-level AUC under random relabelling of the test patients.

    Parameters
    ----------
    test : test images: ``patient_id, label`` (the patient's) and the ``score`` column
    score : the score column
    n_perm : relabellings
    seed : generator seed

    Returns
    -------
    ``{"image": sd, "patient": sd}``; NaN where a level has no case of one class.
    """
    patients = test.groupby("patient_id", sort=True).agg(label=("label", "first"), mean=(score, "mean"),
                                                          images=(score, "size"))
    n_dm = int(patients["label"].sum())
    P = len(patients)
    if n_dm == 0 or n_dm == P:
        return {"image": float("nan"), "patient": float("nan")}
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_perm, P))
    order = np.argsort(rng.random((n_perm, P)), axis=1)[:, :n_dm]
    np.put_along_axis(labels, order, 1.0, axis=1)
    # image level: a patient's images move together
    ranks = rankdata(test[score].to_numpy(float))
    per_patient = pd.Series(ranks, index=test["patient_id"].to_numpy()).groupby(level=0).sum()
    per_patient = per_patient.reindex(patients.index).to_numpy()
    counts = patients["images"].to_numpy(float)
    image_auc = _auc_from_rank_sums(labels @ per_patient, labels @ counts, len(test))
    patient_ranks = rankdata(patients["mean"].to_numpy(float))
    patient_auc = _auc_from_rank_sums(labels @ patient_ranks, np.full(n_perm, n_dm, float), P)
    return {"image": float(np.nanstd(image_auc, ddof=1)), "patient": float(np.nanstd(patient_auc, ddof=1))}


def null_bounds(sd: float, m: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The Bonferroni bound 0.5 ± z·sd for one of ``m`` null AUCs at family level ``alpha``."""
    z = norm.isf(alpha / (2 * max(m, 1)))
    return 0.5 - z * sd, 0.5 + z * sd
