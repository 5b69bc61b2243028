"""Tables laid out for the book as the paper prints them (the CSVs keep the long forms)."""
from __future__ import annotations

import pandas as pd

from npc_lib.vocabulary import PAPER_BACKBONES, VARIANT_TITLES, backbone_title, dataset_title, variant_column

VARIANT_HEADS = {variant_column(v): title for v, title in VARIANT_TITLES.items()}
METRICS = {"auc": ("AUC", "{:.3f}", "{:.2f}", "{:+.2f}"), "accuracy": ("Accuracy (%)", "{:.1f}", "{:.2f}", "{:+.1f}")}


def model_name(key: str) -> str:
    return backbone_title(key)


def fmt_value(pattern: str, value) -> str:
    return "" if value is None or pd.isna(value) else pattern.format(float(value))


def table2_paper_form(t2: pd.DataFrame, metric: str = "auc", level: str = "image") -> pd.DataFrame:
    """One metric of Table 2 as in the paper: one row per dataset × model (datasets named once),
    and per variant our value, the published one and the difference.

    Parameters
    ----------
    t2 : the long table of :func:`npc_lib.analysis.evaluation.table2` (``group, dataset, backbone,
        <metric>_<variant>``, and, where published, ``..._published`` and ``..._diff``).
    metric : ``auc`` or ``accuracy``.
    level : ``image`` (the paper's unit) or ``patient`` (no published values).

    Returns
    -------
    DataFrame of strings with two-level columns: ("", Dataset | Model) and, per variant,
    (ours, paper, Δ) — paper and Δ only where published values exist. The pixel reference
    model, where present, closes the table as its own row group.
    """
    name, ours_f, pub_f, diff_f = METRICS[metric]
    rows, last = [], None
    for r in t2.to_dict("records"):
        group = r.get("group", "CNN")
        if group != "CNN" and all(pd.isna(r.get(f"{metric}_{c}")) for c in VARIANT_HEADS):
            continue
        model = model_name(r["backbone"]) if group == "CNN" else f"Pixel reference ({r['backbone']})"
        if group == "CNN" and r["backbone"] not in (*PAPER_BACKBONES, "average"):
            model = f"{model} (added here)"  # this project's addition: no published row
        row = {("", "Dataset"): r["dataset"] if (r["dataset"], group) != last else "", ("", "Model"): model}
        last = (r["dataset"], group)
        for v, head in VARIANT_HEADS.items():
            row[(f"{head} {name}", f"ours ({level})")] = fmt_value(ours_f, r.get(f"{metric}_{v}"))
            if f"{metric}_{v}_published" in t2:
                row[(f"{head} {name}", "paper")] = fmt_value(pub_f, r.get(f"{metric}_{v}_published"))
                row[(f"{head} {name}", "Δ")] = fmt_value(diff_f, r.get(f"{metric}_{v}_diff"))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def ci_text(auc, low, high, sep: str = " ") -> str:
    """``0.71 (0.60–0.82)``; ``sep="<br>"`` puts the interval on a second line of an HTML cell (wide tables)."""
    if auc is None or pd.isna(auc):
        return "n/a"
    return f"{auc:.2f}{sep}({low:.2f}–{high:.2f})" if pd.notna(low) else f"{auc:.2f}"


def dataset_variant_cell(datasets, variants) -> list[str]:
    """Dataset and variant in one two-line HTML cell (keeps wide tables inside the text column)."""
    return [f"{d}<br>{v}" if isinstance(v, str) and v else str(d) for d, v in zip(datasets, variants)]


def references_book_form(summary: pd.DataFrame) -> pd.DataFrame:
    """The reference summary (:func:`npc_lib.analysis.references.reference_summary`) for the book: AUCs
    with their 95 % CIs in one cell each, one row per dataset × variant × level.

    Parameters
    ----------
    summary : :func:`~npc_lib.analysis.references.reference_summary`

    Returns
    -------
    DataFrame with display columns, one row per dataset × variant × level.
    """
    out = pd.DataFrame({
        "Dataset": summary["dataset"], "Variant": summary["variant"], "Level": summary["level"],
        "Test patients (DM)": [f"{int(p)} ({int(d)})" for p, d in zip(summary["test_patients"],
                                                                      summary["test_dm_patients"])],
    })
    if "planted_auc" in summary:
        out["Planted-risk reference"] = [ci_text(*v) for v in zip(summary["planted_auc"], summary["planted_low"],
                                                               summary["planted_high"])]
    out["Pixel reference"] = [ci_text(*v) for v in zip(summary["pixel_auc"], summary["pixel_low"], summary["pixel_high"])]
    out["Paper's four backbones: mean (range)"] = [f"{m:.2f} ({lo:.2f}–{hi:.2f})" if pd.notna(m) else "n/a"
                                                   for m, lo, hi in zip(summary["cnn_mean_auc"], summary["cnn_min_auc"],
                                                                        summary["cnn_max_auc"])]
    if "lite0_auc" in summary and summary["lite0_auc"].notna().any():
        out["EfficientNet-Lite0 (added)"] = [f"{v:.2f}" if pd.notna(v) else "n/a" for v in summary["lite0_auc"]]
    if "null_cnn_auc" in summary:
        out["Negative control CNN"] = [f"{v:.2f}" if pd.notna(v) else "n/a" for v in summary["null_cnn_auc"]]
    return out


def p_text(value) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def test_counts_book_form(counts: pd.DataFrame) -> pd.DataFrame:
    """Test patients and images per dataset, with the book's column names.

    Parameters
    ----------
    counts : ``StudyEvaluation.test_counts``

    Returns
    -------
    DataFrame: Dataset, Test patients, of them with DM, Test images.
    """
    return counts.rename(columns={"dataset": "Dataset", "test_patients": "Test patients",
                                  "test_dm_patients": "of them with DM", "test_images": "Test images"})


def dataset_counts_book_form(counts: pd.DataFrame) -> pd.DataFrame:
    """Images, patients and DM patients per dataset (rows) and split (columns).

    Parameters
    ----------
    counts : :func:`npc_lib.learn.study.dataset_counts`

    Returns
    -------
    DataFrame indexed by dataset (with its descriptive title), columns (count, split).
    """
    wide = counts.pivot_table(index="dataset", columns="split", values=["images", "patients", "dm_patients"])
    return wide.rename(index=lambda d: f"{d}: {dataset_title(d)}")


def metrics_book_form(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-run test metrics, compact: image-level AUC (DeLong CI), accuracy, sensitivity and
    specificity at 0.5, and the patient-level AUC (bootstrap CI where computed, else DeLong).

    Parameters
    ----------
    metrics : one row per run (``evaluation.evaluate_runs``)

    Returns
    -------
    DataFrame with display columns, one row per run.
    """
    boot = "patient_auc_boot_low" in metrics
    return pd.DataFrame({
        "Dataset": metrics["dataset"], "Variant": metrics["variant"],
        "Model": [model_name(b) for b in metrics["backbone"]],
        "AUC, image (95 % CI)": [ci_text(*v) for v in zip(metrics["auc"], metrics["auc_low"], metrics["auc_high"])],
        "Accuracy (%)": [fmt_value("{:.1f}", 100 * a) for a in metrics["accuracy"]],
        "Sensitivity": [fmt_value("{:.2f}", v) for v in metrics["sensitivity"]],
        "Specificity": [fmt_value("{:.2f}", v) for v in metrics["specificity"]],
        "AUC, patient (95 % CI)": [ci_text(*v) for v in zip(
            metrics["patient_auc"], metrics["patient_auc_boot_low" if boot else "patient_auc_low"],
            metrics["patient_auc_boot_high" if boot else "patient_auc_high"])],
    })


def tnm_comparison_book_form(cmp: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests of each model against stage IV vs I–III (patient level), compact.

    Parameters
    ----------
    cmp : ``evaluation.compare_with_tnm``

    Returns
    -------
    DataFrame with display columns, one row per run.
    """
    return pd.DataFrame({
        "Dataset": cmp["dataset"], "Variant": cmp["variant"], "Model": [model_name(b) for b in cmp["backbone"]],
        "Patients": cmp["patients"], "Model AUC": [fmt_value("{:.3f}", v) for v in cmp["model_auc"]],
        "TNM AUC": [fmt_value("{:.3f}", v) for v in cmp["tnm_auc"]], "p (DeLong)": [p_text(v) for v in cmp["p"]],
        "p (Holm, all models)": [p_text(v) for v in cmp["p_holm"]] if "p_holm" in cmp else ""})


def selection_book_form(selection: pd.DataFrame) -> pd.DataFrame:
    """The model shown per dataset × variant and the training-only figure it was chosen by.

    Parameters
    ----------
    selection : ``study_evaluation.select_on_training``

    Returns
    -------
    DataFrame with display columns, the selected rows only.
    """
    s = selection[selection["selected"]]
    return pd.DataFrame({"Dataset": s["dataset"], "Variant": s["variant"],
                         "Chosen model": [model_name(b) for b in s["backbone"]],
                         "Training AUC (out of fold)": [fmt_value("{:.3f}", v) for v in s["train_oof_auc"]],
                         "Criterion": s["criterion"]})


def calibration_book_form(table: pd.DataFrame) -> pd.DataFrame:
    """Calibration intercept, slope and Brier score (95 % CIs) of every run on its test patients.

    Parameters
    ----------
    table : ``evaluation/calibration.csv`` (``evaluation.calibration_table``)

    Returns
    -------
    DataFrame with display columns, one row per run, in grid order.
    """
    return pd.DataFrame({
        "Dataset": table["dataset"], "Variant": table["variant"], "Model": [model_name(b) for b in table["backbone"]],
        "Intercept (ideal 0)": [ci_text(*v) for v in zip(table["intercept"], table["intercept_low"], table["intercept_high"])],
        "Slope (ideal 1)": [ci_text(*v) for v in zip(table["slope"], table["slope_low"], table["slope_high"])],
        "Brier score": [ci_text(*v) for v in zip(table["brier"], table["brier_low"], table["brier_high"])],
    })


def hybrid_book_form(hybrid: pd.DataFrame) -> pd.DataFrame:
    """Clinical, image and hybrid models per backbone on the test patients, compact.

    Parameters
    ----------
    hybrid : the hybrid table (``hybrid_models``)

    Returns
    -------
    DataFrame with display columns, one row per backbone × model.
    """
    return pd.DataFrame({
        "Image model": [model_name(b) for b in hybrid["backbone"]], "Model": hybrid["model"],
        "Patients (DM)": [f"{int(p)} ({int(d)})" for p, d in zip(hybrid["patients"], hybrid["dm"])],
        "AUC (95 % CI)": [ci_text(*v) for v in zip(hybrid["auc"], hybrid["auc_low"], hybrid["auc_high"])],
        "Training image AUC (out of fold)": [fmt_value("{:.3f}", v) for v in hybrid["train_oof_image_auc"]]})


def provenance_book_form(prov: pd.DataFrame) -> pd.DataFrame:
    """Provenance per run, compact: weights (and mode), configuration hash (first 10 characters),
    seeds (train / split / cohort) and wall time.

    Parameters
    ----------
    prov : :func:`npc_lib.show.report.provenance`

    Returns
    -------
    DataFrame with display columns, one row per run.
    """
    return pd.DataFrame({
        "Dataset": prov["dataset"], "Variant": prov["variant"], "Model": [model_name(b) for b in prov["backbone"]],
        "Weights": [f"{w} ({m})" for w, m in zip(prov["weights"], prov["mode"])],
        "Config hash": [str(h)[:10] for h in prov["config_hash"]],
        "Seeds": [f"{a}/{b}/{c}" for a, b, c in zip(prov["seed_train"], prov["seed_split"], prov["seed_cohort"])],
        "Wall (s)": [fmt_value("{:.1f}", v) for v in prov["wall_s"]]})


def cam_book_form(table: pd.DataFrame) -> pd.DataFrame:
    """The Grad-CAM study per run, compact: CAM-in-ROI fraction, area share, enrichment and the
    randomisation check (Spearman ρ), with the reason wherever a value is undefined (the number
    of images per run is the notebook's ``n_images``).

    Parameters
    ----------
    table : the ``table`` of :func:`~npc_lib.analysis.cam_study.cam_study`

    Returns
    -------
    DataFrame with display columns, one row per run.
    """
    return pd.DataFrame({
        "Dataset": table["dataset"], "Variant": table["variant"],
        "Model": [model_name(b) for b in table["backbone"]], "CAM grid": table["cam_grid"], "CAM in ROI": [fmt_value("{:.3f}", v) for v in table["cam_in_roi"]],
        "ROI area share": [fmt_value("{:.3f}", v) for v in table["area_share"]],
        "Enrichment": [fmt_value("{:.2f}", v) for v in table["enrichment"]],
        "Randomised ρ": [fmt_value("{:.2f}", v) for v in table["randomised_spearman"]],
        "Note": table["note"].fillna("")})


def pretraining_book_form(summary: pd.DataFrame) -> pd.DataFrame:
    """The "what ImageNet pretraining buys" table for the book (patient level), one row per dataset × variant.

    Parameters
    ----------
    summary : :func:`npc_lib.analysis.ablation.pretraining_summary`

    Returns
    -------
    DataFrame with display columns: Lite0 with ImageNet and with random weights (95 % CIs), the paired
    difference with its DeLong p (raw, and Holm-adjusted in brackets), the paper's four backbones (mean
    and range, and the weights they ran with) and the two references.
    """
    def pv(p):
        return "n/a" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")

    return pd.DataFrame({
        "Dataset": summary["dataset"], "Variant": [VARIANT_TITLES.get(v, v) for v in summary["variant"]],
        "Lite0, ImageNet": [ci_text(*v) for v in zip(summary["auc_imagenet"], summary["auc_imagenet_low"],
                                                  summary["auc_imagenet_high"])],
        "Lite0, random": [ci_text(*v) for v in zip(summary["auc_random"], summary["auc_random_low"],
                                                summary["auc_random_high"])],
        "Difference": [fmt_value("{:+.2f}", d) or "n/a" for d in summary["auc_difference"]],
        "p (Holm)": [f"{pv(p)} ({pv(h)})" for p, h in zip(summary["p_delong"], summary["p_holm"])],
        "Paper's four: mean (range), weights": [
            f"{m:.2f} ({lo:.2f}–{hi:.2f}), {w}" if pd.notna(m) else "n/a" for m, lo, hi, w in
            zip(summary["paper_four_mean"], summary["paper_four_min"], summary["paper_four_max"],
                summary["paper_four_weights"])],
        "Planted-risk reference": [ci_text(*v) for v in zip(summary["planted_auc"], summary["planted_low"],
                                                         summary["planted_high"])],
        "Pixel reference": [ci_text(*v) for v in zip(summary["pixel_auc"], summary["pixel_low"], summary["pixel_high"])],
    })
