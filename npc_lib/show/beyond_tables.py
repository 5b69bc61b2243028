"""The "beyond the paper" chapter's tables in the book's layout: resplits and time to metastasis."""
from __future__ import annotations

import pandas as pd

from npc_lib.show.book_tables import ci_text, fmt_value, model_name, p_text


def resplit_book_form(cells: pd.DataFrame) -> pd.DataFrame:
    """The resplit summary per dataset × variant for the book (patient level, mean over the paper's four
    backbones; EfficientNet-Lite0's median beside it).

    Parameters
    ----------
    cells : :func:`npc_lib.analysis.resplits.cell_summary`

    Returns
    -------
    DataFrame with display columns, one row per dataset × variant.
    """
    out = pd.DataFrame({
        "Dataset": cells["dataset"], "Variant": cells["variant"], "Splits": cells["splits"].astype(int),
        "Paper's four: median AUC (middle 95 %)": [ci_text(*v) for v in zip(cells["median_auc"], cells["auc_2_5"],
                                                                             cells["auc_97_5"])],
        "This run's split": [fmt_value("{:.2f}", v) for v in cells["run_auc"]],
        "Its percentile": [fmt_value("{:.0f}", v) for v in cells["run_percentile"]],
        "TNM median AUC": [fmt_value("{:.2f}", v) for v in cells["tnm_median_auc"]],
        "Splits beating TNM": [fmt_value("{:.0%}", v) for v in cells["share_beating_tnm"]]})
    if "lite0_median_auc" in cells and cells["lite0_median_auc"].notna().any():
        out["EfficientNet-Lite0 median (added)"] = [fmt_value("{:.2f}", v) for v in cells["lite0_median_auc"]]
    return out


def survival_book_form(table: pd.DataFrame) -> pd.DataFrame:
    """Time to DM per model: Harrell's C (95 % CI), log-rank p of the training-median split, the
    Cox hazard ratio per SD of the score (adjusted for stage) and the Cox model's test C-index.

    Parameters
    ----------
    table : ``evaluation/survival.csv`` (or some of its rows)

    Returns
    -------
    DataFrame with display columns, one row per model.
    """
    return pd.DataFrame({
        "Dataset": table["dataset"], "Variant": table["variant"], "Model": [model_name(b) for b in table["backbone"]],
        "C-index (95 % CI)": [ci_text(*v) for v in zip(table["c_index"], table["c_low"], table["c_high"])],
        "Log-rank p": [p_text(v) for v in table["logrank_p"]],
        "HR per SD (95 % CI)": [ci_text(*v) for v in zip(table["hr"], table["hr_low"], table["hr_high"])],
        "Cox C-index": [fmt_value("{:.2f}", v) for v in table["cox_c_index"]],
        "Events / patients": [f"{int(e)} / {int(n)}" for e, n in zip(table["events"], table["test_patients"])]})
