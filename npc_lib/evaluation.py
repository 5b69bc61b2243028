"""Per-run evaluation and Table 2 beside the published values (Hua et al. 2023, Table 2).

Each finished run's ``predictions.parquet`` is scored on the test split at image level (as the
paper) and at patient level (mean of a patient's image probabilities). Thresholds: 0.5 and the
Youden threshold chosen on the training split and applied unchanged to test. Undefined metrics
become NaN with the reason in ``note``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import MetricError, auc_ci_delong, bootstrap_auc_ci, patient_scores, threshold_metrics, youden_threshold
from .published import published_table2

VARIANT_COLUMNS = {"intratumour": "intratumour", "intra-peritumour": "intra_peritumour"}


def load_runs(models_dir: str | Path) -> list[tuple[dict, pd.DataFrame]]:
    """(run.json, predictions) of every finished run under ``models_dir``."""
    out = []
    for d in sorted(Path(models_dir).iterdir()):
        if (d / "run.json").is_file() and (d / "predictions.parquet").is_file():
            out.append((json.loads((d / "run.json").read_text()), pd.read_parquet(d / "predictions.parquet")))
    return out


def _level_metrics(train: pd.DataFrame, test: pd.DataFrame, prefix: str, groups=None, n_boot: int = 0,
                   seed: int = 0) -> dict:
    out, notes = {}, []
    y, p = test["label"].to_numpy(), test["probability"].to_numpy()
    try:
        ci = auc_ci_delong(y, p)
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


def evaluate_predictions(pred: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Image- and patient-level test metrics of one run."""
    train, test = pred[pred["split"] == "train"], pred[pred["split"] == "test"]
    image, notes = _level_metrics(train, test, "", groups=None, n_boot=0)
    try:
        ptrain, ptest = patient_scores(train), patient_scores(test)
        patient, pnotes = _level_metrics(ptrain, ptest, "patient_", n_boot=n_boot, seed=seed)
        notes += pnotes
    except MetricError as exc:
        patient = {}
        notes.append(f"patient level: {exc}")
    return {**image, **patient, "test_images": len(test), "test_patients": test["patient_id"].nunique(),
            "note": "; ".join(notes)}


def evaluate_runs(models_dir: str | Path, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row of metrics per run (dataset, variant, backbone)."""
    rows = []
    for meta, pred in load_runs(models_dir):
        cfg = meta["config"]
        rows.append({"dataset": cfg["dataset"], "variant": cfg["variant"], "backbone": cfg["backbone"],
                     "weights": meta["weights"]["used"], **evaluate_predictions(pred, n_boot, seed)})
    return pd.DataFrame(rows)


def table2(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 2 layout: dataset × backbone rows, AUC and accuracy (%) per variant, with averages,
    beside the published values and the differences (ours − published)."""
    wide = metrics.pivot_table(index=["dataset", "backbone"], columns="variant", values=["auc", "accuracy"],
                               aggfunc="first")
    wide.columns = [f"{m}_{VARIANT_COLUMNS[v]}" for m, v in wide.columns]
    wide = wide.reset_index()
    for c in [c for c in wide.columns if c.startswith("accuracy_")]:
        wide[c] = 100 * wide[c]
    pub = published_table2().rename(columns={"model": "backbone"})
    pub = pub[pub["backbone"] != "-"]
    merged = wide.merge(pub, on=["dataset", "backbone"], how="left", suffixes=("", "_published"))
    for c in [c for c in wide.columns if c.startswith(("auc_", "accuracy_"))]:
        if f"{c}_published" in merged:
            merged[f"{c}_diff"] = merged[c] - merged[f"{c}_published"]
    avg = merged.groupby("dataset", sort=False).mean(numeric_only=True).reset_index().assign(backbone="average")
    order = {d: i for i, d in enumerate(["NPC-CMLN", "NPC", "CMLN", "Max tumour"])}
    out = pd.concat([merged, avg], ignore_index=True)
    out["_o"] = out["dataset"].map(order).fillna(99)
    out["_b"] = (out["backbone"] == "average").astype(int)
    return out.sort_values(["_o", "_b", "backbone"]).drop(columns=["_o", "_b"]).reset_index(drop=True)
