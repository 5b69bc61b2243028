"""Clinical baselines: the TNM stage baseline of the paper (overall stage IV vs I–III)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from npc_lib.analysis.metrics import binary_metrics
from npc_lib.data.staging import STAGE_LEVELS, ordinal


def _auc(y, score) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def tnm_scores(clinical: pd.DataFrame, split: pd.Series, subset: str = "test") -> pd.DataFrame:
    """The ``subset`` patients' TNM scores.

    Returns
    -------
    DataFrame, one row per patient: ``patient_id, label`` (DM 0/1), ``stage_iv`` (0/1),
    ``ordinal_stage`` (1–4) and, when T and N are given, ``t_plus_n`` (T number + N number).
    """
    c = clinical[clinical["patient_id"].map(split) == subset]
    out = pd.DataFrame({"patient_id": c["patient_id"].to_numpy(), "label": c["dm"].to_numpy(int),
                        "stage_iv": (c["overall_stage"] == "IV").to_numpy(int),
                        "ordinal_stage": c["overall_stage"].map(lambda s: ordinal(s, STAGE_LEVELS)).to_numpy()})
    if {"t_stage", "n_stage"} <= set(c.columns):
        out["t_plus_n"] = (c["t_stage"].str[1].astype(int) + c["n_stage"].str[1].astype(int)).to_numpy()
    return out


def tnm_baseline(clinical: pd.DataFrame, split: pd.Series, subset: str = "test") -> dict:
    """TNM baselines on the ``subset`` patients: stage IV vs I–III (AUC and 0/1 metrics), ordinal
    stage and T + N (AUC).

    Parameters
    ----------
    clinical : the clinical table (``patient_id, dm, overall_stage, t_stage, n_stage``)
    split : patient_id -> ``train``/``test``
    subset : which patients

    Returns
    -------
    dict: ``subset, patients, dm``, ``stage_iv_vs_i_iii`` (``auc``, accuracy, sensitivity, specificity,
    F1, confusion counts), ``ordinal_stage`` and ``t_plus_n_ordinal`` (``auc``).
    """
    s = tnm_scores(clinical, split, subset)
    y, stage_iv = s["label"].to_numpy(), s["stage_iv"].to_numpy()
    return {
        "subset": subset,
        "patients": int(len(s)),
        "dm": int(y.sum()),
        "stage_iv_vs_i_iii": {"auc": _auc(y, stage_iv), **binary_metrics(y, stage_iv)},
        "ordinal_stage": {"auc": _auc(y, s["ordinal_stage"].to_numpy())},
        "t_plus_n_ordinal": {"auc": _auc(y, s["t_plus_n"].to_numpy())},
    }
