"""The "beyond the paper" chapter's tables in the book's layout: resplits and time to metastasis."""
from __future__ import annotations

import pandas as pd

from npc_lib.show.book_tables import ci_text, dataset_variant_cell, fmt_value, model_name, p_text


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
    """Time to DM per model: Harrell's C (95 % CI) on all test patients and among those with DM only,
    log-rank p of the training-median split, the Cox hazard ratio per SD of the score with what it is
    adjusted for, the Cox model's test C-index, and the events and patients of each split.

    Parameters
    ----------
    table : ``evaluation/survival.csv`` (or some of its rows)

    Returns
    -------
    DataFrame with display columns, one row per model.
    """
    def counts(e, n):
        return f"{int(e)} / {int(n)}" if pd.notna(n) and n else "—"

    return pd.DataFrame({
        "Dataset, variant": dataset_variant_cell(table["dataset"], table["variant"]),
        "Model": [model_name(b) for b in table["backbone"]],
        "C-index, all (95 % CI)": [ci_text(*v, sep="<br>") for v in zip(table["c_index"], table["c_low"], table["c_high"])],
        "C-index, DM patients only": [ci_text(*v, sep="<br>") for v in zip(table["c_index_events"], table["c_events_low"],
                                                                           table["c_events_high"])],
        "Log-rank p": [p_text(v) for v in table["logrank_p"]],
        "HR per SD (95 % CI)": [ci_text(*v, sep="<br>") for v in zip(table["hr"], table["hr_low"], table["hr_high"])],
        "HR adjusted for": [v if isinstance(v, str) and v else "—" for v in table["hr_adjusted_for"]],
        "Cox C-index": [fmt_value("{:.2f}", v) for v in table["cox_c_index"]],
        "Events / patients, train (Cox fit)": [counts(e, n) for e, n in zip(table["train_events"], table["train_patients"])],
        "Events / patients, test": [counts(e, n) for e, n in zip(table["test_events"], table["test_patients"])]})


def pretraining_resplit_book_form(summary: pd.DataFrame) -> pd.DataFrame:
    """The across-resplits pretraining summary for the book: median paired difference with the middle 95 %
    of splits, wins, the mean difference and its corrected resampled t-test (Holm-adjusted beside it).

    Parameters
    ----------
    summary : :func:`npc_lib.analysis.pretraining_resplits.pretraining_pair_summary`

    Returns
    -------
    DataFrame with display columns, one row per dataset × variant × level.
    """
    return pd.DataFrame({
        "Dataset": summary["dataset"], "Variant": summary["variant"], "Level": summary["level"],
        "Splits": summary["splits"].astype(int),
        "Median difference (middle 95 % of splits)": [
            f"{m:+.3f} ({lo:+.3f} to {hi:+.3f})" if pd.notna(m) else "n/a"
            for m, lo, hi in zip(summary["median_difference"], summary["difference_2_5"], summary["difference_97_5"])],
        "ImageNet wins": [fmt_value("{:.0%}", v) for v in summary["share_imagenet_wins"]],
        "Mean difference": [fmt_value("{:+.3f}", v) for v in summary["mean_difference"]],
        "Corrected resampled t p (Holm)": [f"{p_text(p)} ({p_text(h)})" for p, h in
                                           zip(summary["p_corrected"], summary["p_corrected_holm"])]})


def finetune_book_form(table: pd.DataFrame) -> pd.DataFrame:
    """The fine-tuning ablation for the book: per dataset × variant × level, the four arms' AUC (95 % CI), the
    blocks trained and epochs kept, each fine-tuned arm's paired DeLong p against its frozen head, and wall time.

    Parameters
    ----------
    table : :func:`npc_lib.analysis.finetune_ablation.finetune_ablation`

    Returns
    -------
    DataFrame with display columns.
    """
    if not len(table):
        return pd.DataFrame({"": ["No fine-tuning ablation in this run (profile key finetune_ablation)."]})
    names = {("imagenet", "finetune"): "ImageNet, top fine-tuned", ("imagenet", "head"): "ImageNet, frozen (head)",
             ("random", "finetune"): "random, top fine-tuned", ("random", "head"): "random, frozen (head)"}
    return pd.DataFrame({
        "Dataset": table["dataset"], "Variant": table["variant"], "Level": table["level"],
        "EfficientNet-Lite0": [names[(i, m)] for i, m in zip(table["init"], table["mode"])],
        "Blocks trained": table["blocks_trained"].astype(int), "Epochs": table["epochs"].astype(int),
        "Test AUC (95 % CI)": [ci_text(*v) for v in zip(table["auc"], table["auc_low"], table["auc_high"])],
        "Paired p against its frozen head": [p_text(v) if pd.notna(v) else "" for v in table["p_vs_head"]],
        "Seconds": [fmt_value("{:.1f}", v) for v in table["seconds"]]})
