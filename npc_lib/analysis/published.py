"""The paper's published Table 1 and Table 2 (Hua et al. 2023, DOI 10.2174/1386207325666220919091210)."""
from __future__ import annotations

from importlib import resources

import pandas as pd

from npc_lib.vocabulary import INTRATUMOUR, VARIANTS, variant_column


def published_table1() -> pd.DataFrame:
    """Published Table 1: counts, age mean/SD and p-values by split and DM status.

    Returns
    -------
    DataFrame, one row per variable × level: ``train_dm, train_no_dm, test_dm, test_no_dm`` and p-values.
    """
    with resources.files("npc_lib.resources").joinpath("table1_published.csv").open() as f:
        return pd.read_csv(f)


def published_table2() -> pd.DataFrame:
    """Published Table 2: AUC and accuracy per dataset × backbone, intratumour and intra-peritumour.

    Returns
    -------
    DataFrame: ``dataset, model, auc_intratumour, auc_intra_peritumour, accuracy_intratumour,
    accuracy_intra_peritumour`` (``model`` ``-`` for the TNM rows).
    """
    with resources.files("npc_lib.resources").joinpath("table2_published.csv").open() as f:
        return pd.read_csv(f)


def published_facts() -> dict:
    """Numbers the book quotes from the paper, read from the published tables (never typed):
    cohort sizes (Table 1), the best AUC and its model (Table 2), and the TNM baseline (Table 2).

    Returns
    -------
    dict: ``patients, train, test, dm``; ``best_auc, best_dataset, best_variant, best_model``;
    ``tnm_auc, tnm_accuracy``.
    """
    t1 = published_table1().set_index(["variable", "level"])
    n = t1.loc[("patients", "all")]
    t2 = published_table2()
    models = t2[t2["model"] != "-"]
    long = models.melt(id_vars=["dataset", "model"], value_vars=[f"auc_{variant_column(v)}" for v in VARIANTS],
                       var_name="variant", value_name="auc")
    best = long.sort_values("auc", ascending=False, kind="stable").iloc[0]
    tnm = t2[t2["model"] == "-"].iloc[0]
    return {"patients": int(n[["train_dm", "train_no_dm", "test_dm", "test_no_dm"]].sum()),
            "train": int(n["train_dm"] + n["train_no_dm"]), "test": int(n["test_dm"] + n["test_no_dm"]),
            "dm": int(n["train_dm"] + n["test_dm"]),
            "best_auc": float(best["auc"]), "best_dataset": best["dataset"],
            "best_variant": {f"auc_{variant_column(v)}": v for v in VARIANTS}[best["variant"]],
            "best_model": best["model"], "tnm_auc": float(tnm[f"auc_{variant_column(INTRATUMOUR)}"]),
            "tnm_accuracy": float(tnm[f"accuracy_{variant_column(INTRATUMOUR)}"])}
