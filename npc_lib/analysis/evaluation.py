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

from npc_lib.errors import NpcError
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, bootstrap_auc_ci, patient_scores, threshold_metrics, youden_threshold
from npc_lib.analysis.published import published_table2
from npc_lib.vocabulary import variant_column



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


def table2(metrics: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 layout: dataset × backbone rows, AUC and accuracy (%) per variant, with averages,
    beside the published values and the differences (ours − published); then, as their own row
    group (``group`` = ``pixel reference``), the image-level AUCs of the pixel reference model."""
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
    avg = merged.groupby("dataset", sort=False).mean(numeric_only=True).reset_index().assign(backbone="average")
    order = {d: i for i, d in enumerate(["NPC-CMLN", "NPC", "CMLN", "Max tumour"])}
    out = pd.concat([merged, avg], ignore_index=True)
    out["_o"] = out["dataset"].map(order).fillna(99)
    out["_b"] = (out["backbone"] == "average").astype(int)
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


def tnm_scores(clinical: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Test patients' TNM scores: stage IV indicator and ordinal stage (1–4)."""
    from npc_lib.data.staging import STAGE_LEVELS, ordinal
    c = clinical[clinical["patient_id"].map(split) == "test"]
    return pd.DataFrame({"patient_id": c["patient_id"].to_numpy(), "label": c["dm"].to_numpy(int),
                         "stage_iv": (c["overall_stage"] == "IV").to_numpy(int),
                         "ordinal_stage": c["overall_stage"].map(lambda s: ordinal(s, STAGE_LEVELS)).to_numpy()})


def compare_with_tnm(runs: dict, tnm: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong (patient level) of each run against stage IV vs I–III on the same patients."""
    from npc_lib.analysis.metrics import delong_test
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
    return pd.DataFrame(rows)


def delong_matrix(runs: dict) -> pd.DataFrame:
    """Patient-level paired DeLong p-values between every two runs (on their common test patients)."""
    from npc_lib.analysis.metrics import delong_test
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


def select_on_training(runs_dir: Path, runs_meta: list[dict], folds: int = 5) -> pd.DataFrame:
    """For each dataset × variant, the backbone whose *training* patients' out-of-fold image AUC
    is highest (head mode); test data never enter the choice.

    Returns
    -------
    DataFrame with one row per run: ``dataset, variant, backbone, train_oof_auc, selected,
    criterion`` (``selected`` marks one backbone per dataset × variant).
    """
    from npc_lib.analysis.hybrid import cached_oof_scores, train_oof_auc
    from npc_lib.learn.train import slug
    rows = []
    for meta in runs_meta:
        cfg = meta["config"]
        d, v, b = cfg["dataset"], cfg["variant"], cfg["backbone"]
        run_dir = runs_dir / "models" / slug(d, v, b)
        try:
            auc, criterion = train_oof_auc(cached_oof_scores(runs_dir, run_dir, folds)), f"{folds}-fold out-of-fold"
        except (NpcError, MetricError) as exc:  # e.g. finetune runs: no cached features to refit
            pred = pd.read_parquet(run_dir / "predictions.parquet")
            train = patient_scores(pred[pred["split"] == "train"])
            try:
                auc = auc_ci_delong(train["label"], train["probability"]).auc
            except MetricError:
                auc = np.nan
            criterion = f"in-sample training AUC ({exc})"
        rows.append({"dataset": d, "variant": v, "backbone": b, "train_oof_auc": auc, "criterion": criterion})
    out = pd.DataFrame(rows, columns=["dataset", "variant", "backbone", "train_oof_auc", "criterion"])
    out["selected"] = False
    ranked = out.assign(_a=out["train_oof_auc"].fillna(-1)).sort_values(["_a", "backbone"], ascending=[False, True])
    out.loc[ranked.groupby(["dataset", "variant"]).head(1).index, "selected"] = True
    return out


def hybrid_models(runs_dir: Path, clinical: pd.DataFrame, runs_meta: list[dict], dataset: str, variant: str,
                  folds: int = 5) -> dict:
    """Hybrid (clinical + out-of-fold image score) vs clinical-only vs image-only, one row set per
    backbone of ``dataset``/``variant``. The figure's backbone is the one with the best
    *training* out-of-fold image AUC (never chosen on test)."""
    from npc_lib.analysis.hybrid import cached_oof_scores, fit_hybrid
    from npc_lib.learn.train import slug
    tables, comps, tests, notes = [], [], {}, []
    best, best_auc = None, -np.inf
    for meta in runs_meta:
        cfg = meta["config"]
        if (cfg["dataset"], cfg["variant"]) != (dataset, variant):
            continue
        b = cfg["backbone"]
        try:
            scores = cached_oof_scores(runs_dir, runs_dir / "models" / slug(dataset, variant, b), folds=folds)
            res = fit_hybrid(clinical, scores)
        except (NpcError, MetricError) as exc:
            notes.append(f"{b}: {exc}")
            continue
        tables.append(res["table"].assign(backbone=b, train_oof_image_auc=res["train_oof_image_auc"],
                                          coefficients=json.dumps(res["coefficients"])))
        comps.append(res["comparisons"].assign(backbone=b))
        tests[b] = res["test"]
        if np.nan_to_num(res["train_oof_image_auc"], nan=-1) > best_auc:
            best, best_auc = b, res["train_oof_image_auc"]
    return {"dataset": dataset, "variant": variant, "folds": folds,
            "table": pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
            "comparisons": pd.concat(comps, ignore_index=True) if comps else pd.DataFrame(),
            "test": tests, "figure_backbone": best, "notes": notes}


def evaluate_study(runs_dir: str | Path, cohort_dir: str | Path | None = None, n_boot: int = 2000,
                   seed: int = 0, hybrid_dataset: str = "NPC-CMLN", hybrid_variant: str = "intra-peritumour",
                   hybrid_folds: int = 5) -> dict:
    """Write metrics, Table 2 (CSV + HTML), the references, TNM baselines and comparisons, the
    DeLong matrix and the figures under ``<runs_dir>/evaluation``; returns a summary."""
    from npc_lib.show import plots
    from npc_lib.atomic import write_csv, write_json, write_text
    from npc_lib.analysis.baselines import tnm_baseline
    from npc_lib.data.cohort import load_clinical
    from npc_lib.analysis.metrics import calibration, net_benefit
    from npc_lib.analysis.references import study_references
    runs_dir = Path(runs_dir)
    out = runs_dir / "evaluation"
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    if cohort_dir is None:
        ref = runs_dir / "cohort.json"
        if not ref.is_file():
            raise FileNotFoundError(f"{ref} missing: pass the cohort directory")
        cohort_dir = json.loads(ref.read_text())["cohort"]
    cohort_dir = Path(cohort_dir)
    loaded = load_runs(runs_dir / "models")
    if not loaded:
        raise FileNotFoundError(f"no finished runs under {runs_dir / 'models'}")
    runs = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p for m, p in loaded}
    metrics = evaluate_runs(runs_dir / "models", n_boot=n_boot, seed=seed)
    write_csv(out / "metrics.csv", metrics, float_format="%.6g")
    split = pd.read_csv(runs_dir / "split.csv").set_index("patient_id")["split"]
    present = sorted({(d, v) for d, v, _ in runs})
    refs = study_references(runs_dir, cohort_dir, split, datasets=sorted({d for d, _ in present}),
                            variants=sorted({v for _, v in present}))
    if refs["planted_table"] is not None:
        write_csv(out / "planted_reference.csv", refs["planted_table"], float_format="%.6g")
    write_csv(out / "reference_model.csv", refs["pixel_table"], float_format="%.6g")
    t2 = table2(metrics, refs["pixel_table"])
    write_csv(out / "table2.csv", t2, float_format="%.4g")
    write_text(out / "table2.html", t2.round(3).to_html(index=False, na_rep=""))
    clinical = load_clinical(cohort_dir / "clinical.csv")
    clinical = clinical[clinical["patient_id"].isin(split.index)]
    tnm = tnm_scores(clinical, split)
    base = tnm_baseline(clinical, split)
    for key, col in (("stage_iv_vs_i_iii", "stage_iv"), ("ordinal_stage", "ordinal_stage")):
        try:
            ci = auc_ci_delong(tnm["label"], tnm[col])
            base[key].update(auc_low=ci.low, auc_high=ci.high)
        except MetricError as exc:
            base[key]["note"] = str(exc)
    write_json(out / "tnm.json", base)
    cmp = compare_with_tnm(runs, tnm)
    write_csv(out / "tnm_comparison.csv", cmp, float_format="%.6g")
    write_csv(out / "delong_matrix.csv", delong_matrix(runs).reset_index(names="run"), float_format="%.4g")
    references = {"planted risk": refs["planted"], "pixel reference": refs["pixel"]}
    plots.save(plots.fig3_roc(runs, "image", references), fig_dir / "fig3_roc_image")
    plots.save(plots.fig3_roc(runs, "patient", references), fig_dir / "fig3_roc_patient")
    plots.save(plots.fig4_tnm_roc(tnm["label"], tnm["stage_iv"], tnm["ordinal_stage"]), fig_dir / "fig4_tnm_roc")
    hist = plots.history_frames(runs_dir / "models")
    plots.save(plots.fig_curves(hist, "accuracy"), fig_dir / "fig5_accuracy")
    plots.save(plots.fig_curves(hist, "loss"), fig_dir / "fig8_loss")
    # the models shown in calibration and decision curves are chosen on training data only
    selection = select_on_training(runs_dir, [m for m, _ in loaded], folds=max(2, hybrid_folds or 5))
    write_csv(out / "model_selection.csv", selection, float_format="%.6g")
    cal, dca = {}, {}
    for r in selection[selection["selected"]].itertuples():
        pts = patient_scores(runs[(r.dataset, r.variant, r.backbone)].query("split == 'test'"))
        label = f"{r.dataset} {r.variant} ({r.backbone})"
        try:
            cal[label] = calibration(pts["label"], pts["probability"], bins=5)["curve"]
            dca[label] = net_benefit(pts["label"], pts["probability"])
        except MetricError:
            continue
    plots.save(plots.fig_calibration(cal), fig_dir / "calibration")
    plots.save(plots.fig_decision_curve(dca), fig_dir / "decision_curves")
    hybrid = {"notes": ["hybrid model not requested"]}
    if hybrid_folds:
        if (hybrid_dataset, hybrid_variant) not in present:
            hybrid_dataset, hybrid_variant = present[0]
        hybrid = hybrid_models(runs_dir, clinical, [m for m, _ in loaded], hybrid_dataset, hybrid_variant,
                               hybrid_folds)
        write_csv(out / "hybrid.csv", hybrid["table"], float_format="%.6g")
        write_csv(out / "hybrid_comparisons.csv", hybrid["comparisons"], float_format="%.6g")
        if hybrid["figure_backbone"]:
            t = hybrid["test"][hybrid["figure_backbone"]]
            plots.save(plots.fig_hybrid_roc(t, f"{hybrid_dataset} {hybrid_variant} "
                                               f"({hybrid['figure_backbone']})"), fig_dir / "hybrid_roc")
    top = (metrics.dropna(subset=["patient_auc"]).sort_values("patient_auc", ascending=False)
           .groupby(["dataset", "variant"]).head(1))
    summary = {"runs": len(runs),
               "highest_test_auc": top[["dataset", "variant", "backbone", "patient_auc", "auc"]].to_dict("records"),
               "selected_on_training": selection[selection["selected"]].drop(columns="selected").to_dict("records"),
               "tnm": base, "weights": sorted(metrics["weights"].unique().tolist()),
               "planted_reference": refs["planted_table"] is not None,
               "hybrid": {k: hybrid.get(k) for k in ("dataset", "variant", "folds", "figure_backbone", "notes")}}
    write_json(out / "summary.json", summary)
    return summary
