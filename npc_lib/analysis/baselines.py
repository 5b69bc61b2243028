"""Clinical baselines: the TNM stage baseline of the paper (overall stage IV vs I–III)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from npc_lib.data.staging import STAGE_LEVELS, ordinal


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


def _auc(y, score) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")


def tnm_baseline(clinical: pd.DataFrame, split: pd.Series, subset: str = "test") -> dict:
    """TNM baselines on the ``subset`` patients: stage IV vs I–III, and ordinal stage (AUC)."""
    c = clinical[clinical["patient_id"].map(split) == subset]
    y = c["dm"].to_numpy(int)
    stage_iv = (c["overall_stage"] == "IV").to_numpy(int)
    ordinal_stage = c["overall_stage"].map(lambda s: ordinal(s, STAGE_LEVELS)).to_numpy()
    return {
        "subset": subset,
        "patients": int(len(c)),
        "dm": int(y.sum()),
        "stage_iv_vs_i_iii": {"auc": _auc(y, stage_iv), **binary_metrics(y, stage_iv)},
        "ordinal_stage": {"auc": _auc(y, ordinal_stage)},
        "t_plus_n_ordinal": {"auc": _auc(y, c["t_stage"].str[1].astype(int) + c["n_stage"].str[1].astype(int))},
    }
