"""The model chosen per dataset × region without the test set: out-of-fold training AUC, or an a-priori choice."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.metrics import MetricError, auc_ci_delong, patient_scores


def select_on_training(runs_meta: list[dict], oof: dict, reasons: dict | None = None, folds: int = 5,
                       a_priori: str | None = None) -> pd.DataFrame:
    """One model per dataset × variant, chosen without the test set.

    Where every backbone of a dataset × variant has out-of-fold training scores (head mode), the
    one whose training patients' out-of-fold AUC is highest. Otherwise (finetune mode: refitting
    would mean retraining backbones, and in-sample training AUCs of fine-tuned networks are near 1)
    the choice is made a priori: the backbone ``a_priori`` (the profile's ``model_choice``), else
    the first of the grid; test data never enter the choice.

    Returns
    -------
    DataFrame with one row per run: ``dataset, variant, backbone, train_oof_auc, criterion,
    selected`` (``selected`` marks one backbone per dataset × variant).
    """
    rows = []
    for meta in runs_meta:
        cfg = meta["config"]
        key = (cfg["dataset"], cfg["variant"], cfg["backbone"])
        auc = np.nan
        if key in oof:
            pts = patient_scores(oof[key])
            try:
                auc = auc_ci_delong(pts["label"], pts["probability"]).auc
            except MetricError:
                pass
        rows.append({"dataset": key[0], "variant": key[1], "backbone": key[2], "train_oof_auc": auc,
                     "criterion": f"{folds}-fold out-of-fold AUC of the training patients" if key in oof else
                     f"a priori ({(reasons or {}).get(key, 'no out-of-fold scores')})"})
    out = pd.DataFrame(rows, columns=["dataset", "variant", "backbone", "train_oof_auc", "criterion"])
    out["selected"] = False
    for _, group in out.groupby(["dataset", "variant"], sort=False):
        if group["criterion"].str.startswith("a priori").any():
            names = list(group["backbone"])
            pick = a_priori if a_priori in names else names[0]
            out.loc[group.index, "criterion"] = (f"a priori: {pick} (the profile's model_choice)" if pick == a_priori
                                                 else f"a priori: {pick} (first backbone of the grid)") + \
                " - no out-of-fold scores for every backbone"
            out.loc[group.index[group["backbone"] == pick][0], "selected"] = True
        else:
            ranked = group.assign(_a=group["train_oof_auc"].fillna(-1)).sort_values(["_a", "backbone"],
                                                                                    ascending=[False, True])
            out.loc[ranked.index[0], "selected"] = True
    return out
