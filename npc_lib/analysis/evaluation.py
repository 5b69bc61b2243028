"""Per-run evaluation and Table 2 beside the published values (Hua et al. 2023, Table 2).

Each finished run's ``predictions.parquet`` is scored on the test split at image level (as the
paper) and at patient level (mean of a patient's image probabilities). Thresholds: 0.5 and the
Youden threshold chosen on the training split (on out-of-fold scores where the study has them, so
that the threshold is not fitted to scores of the very patients the model was trained on) and
applied unchanged to test. Undefined metrics
become NaN with the reason in ``note``. The whole study's evaluation (references, TNM, model
choice, hybrid) is :func:`npc_lib.analysis.study_evaluation.evaluate_study`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from npc_lib.analysis.metrics import (MetricError, auc_ci_delong, bootstrap_auc_ci, calibration, delong_test,
                                      patient_scores, threshold_metrics, youden_threshold)
from npc_lib.layout import ModelRun, model_runs_in
from npc_lib.analysis.published import published_table2
from npc_lib.vocabulary import DATASETS, PAPER_BACKBONES, variant_column


def finished_runs(models_dir: str | Path, backbones: Iterable[str] | None = None) -> list[ModelRun]:
    """Every finished run (``run.json`` and predictions present) under ``models_dir`` (of ``backbones`` only, when
    given), by name."""
    return [run for run in model_runs_in(models_dir, backbones) if run.finished]


def load_runs(models_dir: str | Path, backbones: Iterable[str] | None = None) -> list[tuple[dict, pd.DataFrame]]:
    """(run.json, predictions) of every finished run under ``models_dir``; predictions have one
    row per image: ``patient_id, image_id, split, label, region, slice_index, probability``.

    Parameters
    ----------
    models_dir : the ``models/`` folder of a runs folder
    backbones : only the runs of these backbones (None: every run)

    Returns
    -------
    list of (run.json dict, predictions DataFrame), sorted by run name.
    """
    return [(run.read_meta(), pd.read_parquet(run.predictions)) for run in finished_runs(models_dir, backbones)]


def training_histories(models_dir: str | Path) -> dict[tuple[str, str, str], pd.DataFrame]:
    """(dataset, variant, backbone) -> per-epoch history (``epoch, train_loss, train_accuracy,
    test_loss, test_accuracy``) of every finished run."""
    out = {}
    for run in finished_runs(models_dir):
        cfg = run.read_meta()["config"]
        out[(cfg["dataset"], cfg["variant"], cfg["backbone"])] = pd.read_csv(run.history)
    return out


@dataclass
class DatasetRuns:
    """One dataset's models, for its training page (:func:`dataset_runs`)."""

    runs: pd.DataFrame        # one row per variant × backbone: mode, weights, input size, seconds, config hash
    counts: pd.DataFrame      # images, patients and DM patients per variant and split
    histories: dict           # (variant, backbone) -> per-epoch history
    metrics: pd.DataFrame     # test AUC (DeLong 95 % CI) and accuracy at image and patient level
    mean_patient_auc: float   # over the paper's four backbones (all models without them)
    slug: str                 # the dataset's name in file names


def dataset_runs(profile, runs_dir, dataset: str) -> DatasetRuns:
    """The finished models of one dataset (every variant × backbone of the profile's grid), their training
    histories and test metrics (no bootstrap).

    Parameters
    ----------
    profile : the run's profile
    runs_dir : the runs folder
    dataset : one of the profile's datasets

    Returns
    -------
    :class:`DatasetRuns` (a model that has not finished is listed with status ``missing``).
    """
    from npc_lib.layout import RunLayout
    from npc_lib.vocabulary import PAPER_BACKBONES
    layout = RunLayout.of(runs_dir)
    rows, counts, histories, metrics = [], [], {}, []
    for b in profile.backbones:
        for v in profile.variants:
            run = layout.model(dataset, v, b)
            if not run.finished:
                rows.append({"variant": v, "backbone": b, "status": "missing"})
                continue
            meta = run.read_meta()
            rows.append({"variant": v, "backbone": b, "status": "finished", "mode": meta["mode"],
                         "weights": meta["weights"]["used"], "input (px)": meta.get("input_size"),
                         "seconds": meta["wall_s"], "config hash": meta["config_hash"]})
            if not any(c["variant"] == v for c in counts):
                counts += [{"variant": v, "split": k, **c} for k, c in meta["counts"].items()]
            histories[(v, b)] = pd.read_csv(run.history)
            m = evaluate_predictions(pd.read_parquet(run.predictions), n_boot=0)
            metrics.append({"variant": v, "backbone": b, **{k: m[k] for k in (
                "auc", "auc_low", "auc_high", "accuracy", "patient_auc", "patient_accuracy")}})
    metrics = pd.DataFrame(metrics, columns=["variant", "backbone", "auc", "auc_low", "auc_high", "accuracy",
                                             "patient_auc", "patient_accuracy"])
    four = metrics[metrics["backbone"].isin(PAPER_BACKBONES)]
    mean = float((four if len(four) else metrics)["patient_auc"].mean()) if len(metrics) else float("nan")
    return DatasetRuns(pd.DataFrame(rows), pd.DataFrame(counts), histories, metrics, mean,
                       dataset.lower().replace(" ", "-"))


def _level_metrics(train: pd.DataFrame, test: pd.DataFrame, prefix: str, groups=None, n_boot: int = 0,
                   seed: int = 0) -> tuple[dict, list[str]]:
    out, notes = {}, []
    y, p = test["label"].to_numpy(), test["probability"].to_numpy()
    try:  # image level: a patient's images are one cluster
        ci = auc_ci_delong(y, p, groups=groups)
        out.update({f"{prefix}auc": ci.auc, f"{prefix}auc_low": ci.low, f"{prefix}auc_high": ci.high})
    except MetricError as exc:
        out.update({f"{prefix}auc": np.nan, f"{prefix}auc_low": np.nan, f"{prefix}auc_high": np.nan})
        notes.append(f"{prefix}AUC: {exc}")
    if n_boot:
        try:
            b = bootstrap_auc_ci(y, p, groups, n_boot=n_boot, seed=seed)
            out.update({f"{prefix}auc_boot_low": b.low, f"{prefix}auc_boot_high": b.high})
        except MetricError as exc:
            notes.append(f"{prefix}bootstrap: {exc}")
    m = threshold_metrics(y, p, 0.5) if len(y) else {}
    for k in ("accuracy", "sensitivity", "specificity", "f1"):
        out[f"{prefix}{k}"] = m.get(k, np.nan)
    try:
        t = youden_threshold(train["label"].to_numpy(), train["probability"].to_numpy())
        my = threshold_metrics(y, p, t)
        out[f"{prefix}youden_threshold"] = t
        for k in ("accuracy", "sensitivity", "specificity", "f1"):
            out[f"{prefix}youden_{k}"] = my[k]
    except MetricError as exc:
        notes.append(f"{prefix}Youden: {exc}")
    return out, notes


def evaluate_predictions(pred: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                         train_scores: pd.DataFrame | None = None) -> dict:
    """Image- and patient-level test metrics of one run.

    Parameters
    ----------
    pred : one run's predictions, one row per image (``split, patient_id, label, probability``)
    n_boot : patient bootstrap resamples for the patient-level AUC (0: none)
    seed : bootstrap seed
    train_scores : out-of-fold probabilities of the training images (same columns); the Youden
        thresholds are chosen on them. Without them (e.g. finetune runs) the thresholds are chosen
        on the run's own, in-sample, training probabilities.

    Returns
    -------
    dict: ``auc, auc_low, auc_high`` (DeLong), accuracy/sensitivity/specificity/F1 at 0.5 and at
    the training Youden threshold, the same prefixed ``patient_``, ``threshold_source``,
    ``test_images``, ``test_patients`` and ``note`` (why a metric is missing).
    """
    test = pred[pred["split"] == "test"]
    oof = train_scores is not None and len(train_scores) and train_scores["probability"].notna().all()
    train = train_scores if oof else pred[pred["split"] == "train"]
    image, notes = _level_metrics(train, test, "", groups=test["patient_id"].to_numpy(), n_boot=0)
    try:
        ptrain, ptest = patient_scores(train), patient_scores(test)
        patient, pnotes = _level_metrics(ptrain, ptest, "patient_", n_boot=n_boot, seed=seed)
        notes += pnotes
    except MetricError as exc:
        patient = {}
        notes.append(f"patient level: {exc}")
    return {**image, **patient, "threshold_source": "out-of-fold training" if oof else "in-sample training",
            "test_images": len(test), "test_patients": test["patient_id"].nunique(), "note": "; ".join(notes)}


def evaluate_runs(models_dir: str | Path, n_boot: int = 2000, seed: int = 0, oof: dict | None = None) -> pd.DataFrame:
    """One row of metrics per run (dataset, variant, backbone); ``oof`` maps a run's (dataset,
    variant, backbone) to its out-of-fold training image scores (thresholds are chosen on them)."""
    rows = []
    for meta, pred in load_runs(models_dir):
        cfg = meta["config"]
        key = (cfg["dataset"], cfg["variant"], cfg["backbone"])
        rows.append({"dataset": key[0], "variant": key[1], "backbone": key[2], "weights": meta["weights"]["used"],
                     **evaluate_predictions(pred, n_boot, seed, train_scores=(oof or {}).get(key))})
    return pd.DataFrame(rows)


CALIBRATION_COLUMNS = ["dataset", "variant", "backbone", "test_patients", "intercept", "intercept_low",
                       "intercept_high", "slope", "slope_low", "slope_high", "brier", "brier_low", "brier_high",
                       "note"]


def calibration_table(predictions: dict) -> pd.DataFrame:
    """Calibration of every run on its test patients (patient level: mean image probability):
    intercept (in the large; 0 is ideal), slope (1 is ideal) and Brier score, each with a 95 % CI.

    Parameters
    ----------
    predictions : (dataset, variant, backbone) -> predictions, one row per image

    Returns
    -------
    DataFrame with columns ``CALIBRATION_COLUMNS``, one row per run.
    """
    rows = []
    for (d, v, b), pred in predictions.items():
        row = {"dataset": d, "variant": v, "backbone": b, "note": ""}
        try:
            pts = patient_scores(pred[pred["split"] == "test"])
            row["test_patients"] = len(pts)
            cal = calibration(pts["label"], pts["probability"], bins=5)
            row.update({k: cal[k] for k in CALIBRATION_COLUMNS[4:-1]})
        except (MetricError, ValueError) as exc:
            row["note"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def table2(metrics: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 layout: dataset × backbone rows, AUC and accuracy (%) per variant, with averages,
    beside the published values and the differences (ours − published); then, as their own row
    group (``group`` = ``pixel reference``), the image-level AUCs of the pixel reference model.

    Parameters
    ----------
    metrics : one row per run (:func:`evaluate_runs`)
    reference : the pixel reference's scored table (``references.score_references``), optional

    Returns
    -------
    DataFrame: ``group, dataset, backbone``, ``auc_<variant>``, ``accuracy_<variant>`` (%), their
    ``_published`` and ``_diff`` columns; per dataset the paper's four backbones, their ``average``
    (as the paper averages), then this project's additions (EfficientNet-Lite0, no published value).
    """
    wide = metrics.pivot_table(index=["dataset", "backbone"], columns="variant", values=["auc", "accuracy"],
                               aggfunc="first")
    wide.columns = [f"{m}_{variant_column(v)}" for m, v in wide.columns]
    wide = wide.reset_index()
    for c in [c for c in wide.columns if c.startswith("accuracy_")]:
        wide[c] = 100 * wide[c]
    pub = published_table2().rename(columns={"model": "backbone"})
    pub = pub[pub["backbone"] != "-"]
    merged = wide.merge(pub, on=["dataset", "backbone"], how="left", suffixes=("", "_published"))
    for c in [c for c in wide.columns if c.startswith(("auc_", "accuracy_"))]:
        if f"{c}_published" in merged:
            merged[f"{c}_diff"] = merged[c] - merged[f"{c}_published"]
    paper = merged[merged["backbone"].isin(PAPER_BACKBONES)]  # the published averages are over the paper's four
    avg = paper.groupby("dataset", sort=False).mean(numeric_only=True).reset_index().assign(backbone="average")
    order = {d: i for i, d in enumerate(DATASETS)}
    out = pd.concat([merged, avg], ignore_index=True)
    out["_o"] = out["dataset"].map(order).fillna(99)
    out["_b"] = np.select([out["backbone"].isin(PAPER_BACKBONES), out["backbone"] == "average"], [0, 1], 2)
    out = out.sort_values(["_o", "_b", "backbone"]).drop(columns=["_o", "_b"]).reset_index(drop=True)
    out.insert(0, "group", "CNN")
    if reference is not None and len(reference):
        ref = reference[reference["level"] == "image"].pivot_table(index="dataset", columns="variant", values="auc",
                                                                   aggfunc="first")
        ref.columns = [f"auc_{variant_column(v)}" for v in ref.columns]
        ref = ref.reset_index().assign(group="pixel reference", backbone="logistic regression")
        ref["_o"] = ref["dataset"].map(order).fillna(99)
        out = pd.concat([out, ref.sort_values("_o").drop(columns="_o")], ignore_index=True)
    return out


def compare_with_tnm(runs: dict, tnm: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong (patient level) of each run against stage IV vs I–III on the same patients,
    with Holm-adjusted p-values over all runs (``p_holm``).

    ``runs``: (dataset, variant, backbone) -> predictions; ``tnm``: :func:`~npc_lib.analysis.baselines.tnm_scores`.
    """
    rows = []
    for (d, v, b), pred in runs.items():
        pts = patient_scores(pred[pred["split"] == "test"]).merge(tnm, on=["patient_id", "label"])
        row = {"dataset": d, "variant": v, "backbone": b, "patients": len(pts)}
        try:
            t = delong_test(pts["label"], pts["probability"], pts["stage_iv"])
            row.update(model_auc=t.auc1, tnm_auc=t.auc2, z=t.z, p=t.p, note="")
        except MetricError as exc:
            row.update(model_auc=np.nan, tnm_auc=np.nan, z=np.nan, p=np.nan, note=str(exc))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan  # Holm over every model compared (the family the book counts from)
    tested = out["p"].notna()
    if tested.any():
        out.loc[tested, "p_holm"] = multipletests(out.loc[tested, "p"].to_numpy(), method="holm")[1]
    return out


def delong_matrix(runs: dict) -> pd.DataFrame:
    """Patient-level paired DeLong p-values between every two runs (on their common test patients):
    a symmetric DataFrame indexed and labelled ``dataset / variant / backbone``."""
    keys = sorted(runs)
    scores = {k: patient_scores(runs[k][runs[k]["split"] == "test"]).set_index("patient_id") for k in keys}
    names = [" / ".join(k) for k in keys]
    mat = pd.DataFrame(np.nan, index=names, columns=names)
    for i, a in enumerate(keys):
        mat.iloc[i, i] = 1.0
        for j in range(i + 1, len(keys)):
            b = keys[j]
            common = scores[a].index.intersection(scores[b].index)
            try:
                t = delong_test(scores[a].loc[common, "label"], scores[a].loc[common, "probability"],
                                scores[b].loc[common, "probability"])
                mat.iloc[i, j] = mat.iloc[j, i] = t.p
            except MetricError:
                pass
    return mat
