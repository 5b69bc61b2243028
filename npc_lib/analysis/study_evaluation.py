"""The whole study's evaluation: compute every table the book shows, save them, return them.

:func:`evaluate_study` scores every finished run (:mod:`npc_lib.analysis.evaluation`), the two
references, the TNM baseline and the paired comparisons, chooses one model per dataset ×
variant on *training* data for the calibration and decision curves, fits the hybrid model and
writes the tables under ``evaluation/``. It draws nothing: the notebooks hand the returned
:class:`StudyEvaluation` to one :mod:`npc_lib.show.plots` function per figure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.analysis.ablation import lite0_runs, pretraining_ablation, pretraining_summary
from npc_lib.analysis.baselines import tnm_baseline, tnm_scores
from npc_lib.analysis.evaluation import (calibration_table, compare_with_tnm, delong_matrix, evaluate_runs, load_runs, table2,
                                         training_histories)
from npc_lib.analysis.hybrid import cached_oof_scores, fit_hybrid, training_oof
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, calibration, net_benefit, patient_scores
from npc_lib.analysis.book_numbers import (at_a_glance, comparison_numbers, finding_numbers, negative_control_numbers,
                                           pretraining_numbers, reference_numbers, run_numbers)
from npc_lib.analysis.design import design_findings, read_generation_report
from npc_lib.analysis.finetune_ablation import finetune_ablation, finetune_numbers
from npc_lib.analysis.references import reference_summary, study_references
from npc_lib.analysis.selection import select_on_training
from npc_lib.analysis.stats import paper_form, table1
from npc_lib.atomic import write_csv, write_json, write_text
from npc_lib.data.cohort import load_clinical
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout
from npc_lib.vocabulary import INTRA_PERITUMOUR

RunKey = tuple[str, str, str]  # (dataset, variant, backbone)


@dataclass
class StudyEvaluation:
    """What :func:`evaluate_study` computed (every table is also saved under ``evaluation/``).

    Attributes
    ----------
    metrics : one row per run (``evaluation.evaluate_runs``)
    table2 : Table 2 beside the published values (``evaluation.table2``)
    predictions : run key -> the run's per-image predictions
    references : ``{"planted risk": pseudo-run or None, "pixel reference": pseudo-run}``
    planted_table, pixel_table : the references scored like the runs (planted is None without ground truth)
    tnm : the test patients' TNM scores (``baselines.tnm_scores``)
    tnm_baseline : the TNM AUCs and 0/1 metrics, with DeLong CIs
    tnm_comparison : paired DeLong of each run against stage IV vs I–III
    delong : patient-level DeLong p-values between every two runs
    histories : run key -> per-epoch history
    selection : the model chosen per dataset × variant on training data
    calibration, decision : model label -> reliability curve / net-benefit table (test patients)
    calibration_table : intercept, slope and Brier score with 95 % CIs of every run (test patients;
        ``evaluation.calibration_table``)
    hybrid : ``hybrid_models`` output (empty tables when not requested)
    ablation : Lite0-ImageNet vs Lite0-random per dataset × variant × level (``ablation.pretraining_ablation``;
        empty without an ablation)
    pretraining : the book's "what ImageNet pretraining buys" table at patient level
        (``ablation.pretraining_summary``)
    summary : the JSON summary written to ``evaluation/summary.json``
    table1 : Table 1 in the paper's layout (the evaluated patients and split)
    table2_patient : Table 2 at patient level (no published columns: the paper reports images)
    test_counts : test patients and images per dataset
    reference_summary : references and CNNs per dataset × variant × level (``references.reference_summary``)
    negative_control : the negative control's table (None where it did not run: a user's own cohort)
    negative_family : its family checks (``null_checks.check_null``), or None
    numbers : every number the results chapters cite (:mod:`npc_lib.analysis.book_numbers`)
    findings : the paper's findings, what the generator plants of each and this run's value
        (:func:`npc_lib.analysis.design.design_findings`)
    glance : "this run at a glance" for the landing page (:func:`npc_lib.analysis.book_numbers.at_a_glance`)
    finetune : EfficientNet-Lite0 fine-tuned against frozen heads (:mod:`npc_lib.analysis.finetune_ablation`)
    """

    metrics: pd.DataFrame
    table2: pd.DataFrame
    predictions: dict[RunKey, pd.DataFrame]
    references: dict
    planted_table: pd.DataFrame | None
    pixel_table: pd.DataFrame
    tnm: pd.DataFrame
    tnm_baseline: dict
    tnm_comparison: pd.DataFrame
    delong: pd.DataFrame
    histories: dict[RunKey, pd.DataFrame]
    selection: pd.DataFrame
    calibration: dict = field(default_factory=dict)
    calibration_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    decision: dict = field(default_factory=dict)
    hybrid: dict = field(default_factory=dict)
    ablation: pd.DataFrame = field(default_factory=pd.DataFrame)
    pretraining: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict = field(default_factory=dict)
    table1: pd.DataFrame = field(default_factory=pd.DataFrame)
    table2_patient: pd.DataFrame = field(default_factory=pd.DataFrame)
    test_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    negative_control: pd.DataFrame | None = None
    negative_family: pd.DataFrame | None = None
    numbers: dict = field(default_factory=dict)
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    glance: pd.DataFrame = field(default_factory=pd.DataFrame)
    finetune: pd.DataFrame = field(default_factory=pd.DataFrame)


def hybrid_models(runs_dir: RunLayout | str | Path, clinical: pd.DataFrame, runs_meta: list[dict], dataset: str, variant: str,
                  folds: int = 5) -> dict:
    """Hybrid (clinical + out-of-fold image score) vs clinical-only vs image-only, one row set per
    backbone of ``dataset``/``variant``. The figure's backbone is the one with the best
    *training* out-of-fold image AUC (never chosen on test).

    Returns
    -------
    dict: ``table`` and ``comparisons`` (DataFrames), ``test`` (backbone -> test patients' scores
    per model), ``figure_backbone``, ``dataset``, ``variant``, ``folds``, ``notes``.
    """
    layout = RunLayout.of(runs_dir)
    tables, comps, tests, notes = [], [], {}, []
    best, best_auc = None, -np.inf
    for meta in runs_meta:
        cfg = meta["config"]
        if (cfg["dataset"], cfg["variant"]) != (dataset, variant):
            continue
        b = cfg["backbone"]
        try:
            scores = cached_oof_scores(layout.root, layout.model(dataset, variant, b).root, folds=folds)
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


def _tnm_with_cis(clinical: pd.DataFrame, split: pd.Series, tnm: pd.DataFrame) -> dict:
    base = tnm_baseline(clinical, split)
    for key, col in (("stage_iv_vs_i_iii", "stage_iv"), ("ordinal_stage", "ordinal_stage")):
        try:
            ci = auc_ci_delong(tnm["label"], tnm[col])
            base[key].update(auc_low=ci.low, auc_high=ci.high)
        except MetricError as exc:
            base[key]["note"] = str(exc)
    return base


def _curves_of_selected(selection: pd.DataFrame, predictions: dict) -> tuple[dict, dict]:
    """Reliability and decision curves (test patients) of the models chosen on training data."""
    cal, dca = {}, {}
    for r in selection[selection["selected"]].itertuples():
        pts = patient_scores(predictions[(r.dataset, r.variant, r.backbone)].query("split == 'test'"))
        label = f"{r.dataset} {r.variant} ({r.backbone})"
        try:
            cal[label] = calibration(pts["label"], pts["probability"], bins=5)["curve"]
            dca[label] = net_benefit(pts["label"], pts["probability"])
        except MetricError:
            continue
    return cal, dca


def _test_counts(metrics: pd.DataFrame, runs: dict) -> pd.DataFrame:
    """Test patients (and those with DM) and images per dataset: every model of a dataset has the same."""
    out = metrics.groupby("dataset", sort=False)[["test_patients", "test_images"]].first().reset_index()
    dm = {}
    for (d, _, _), pred in runs.items():
        if d not in dm:
            dm[d] = int(pred[pred["split"] == "test"].groupby("patient_id")["label"].first().sum())
    out.insert(2, "test_dm_patients", out["dataset"].map(dm).astype("Int64"))
    return out


def _pretraining(layout: RunLayout, runs: dict, metrics: pd.DataFrame, refs: dict):
    """The pretraining ablation's tables (written to ``evaluation/``), or two empty frames."""
    random_arm = {(m["config"]["dataset"], m["config"]["variant"]): p for m, p in load_runs(layout.ablation.models)} \
        if layout.ablation.models.is_dir() else {}
    if not random_arm:
        return pd.DataFrame(), pd.DataFrame()
    ablation = pretraining_ablation(lite0_runs(runs), random_arm)
    write_csv(layout.table("pretraining_ablation"), ablation, float_format="%.6g")
    summary = pretraining_summary(ablation, metrics, refs["planted_table"], refs["pixel_table"])
    write_csv(layout.table("pretraining_summary"), summary, float_format="%.6g")
    return ablation, summary


def evaluate_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None, n_boot: int = 2000,
                   seed: int = 0, hybrid_dataset: str = "NPC-CMLN", hybrid_variant: str = INTRA_PERITUMOUR,
                   hybrid_folds: int = 5, a_priori_backbone: str | None = None) -> StudyEvaluation:
    """Score a finished study and save its tables under ``evaluation/``.

    Parameters
    ----------
    runs_dir : the runs folder (``runs/<profile>``)
    cohort_dir : the cohort folder (default: the one recorded in ``cohort.json``)
    n_boot : patient bootstrap resamples for the patient-level AUC intervals
    seed : bootstrap seed
    hybrid_dataset, hybrid_variant : the runs the hybrid model uses (the first present if absent)
    hybrid_folds : folds of the out-of-fold image scores (0 skips the hybrid; the scores still come
        with 5 folds for thresholds and model choice)
    a_priori_backbone : the model chosen per dataset × variant where no out-of-fold scores exist

    Returns
    -------
    :class:`StudyEvaluation`
    """
    layout = RunLayout.of(runs_dir)
    layout.evaluation.mkdir(parents=True, exist_ok=True)
    cohort_dir = Path(cohort_dir or layout.read_cohort_ref()["cohort"])
    loaded = load_runs(layout.models)
    if not loaded:
        raise FileNotFoundError(f"no finished runs under {layout.models}")
    metas = [m for m, _ in loaded]
    runs = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p for m, p in loaded}
    folds = max(2, hybrid_folds or 5)
    oof, no_oof = training_oof(layout.root, metas, folds)  # thresholds and model choice come from these
    metrics = evaluate_runs(layout.models, n_boot=n_boot, seed=seed, oof=oof)
    write_csv(layout.table("metrics"), metrics, float_format="%.6g")
    split = layout.read_split()
    present = sorted({(d, v) for d, v, _ in runs})
    refs = study_references(layout.root, cohort_dir, split, datasets=sorted({d for d, _ in present}),
                            variants=sorted({v for _, v in present}))
    if refs["planted_table"] is not None:
        write_csv(layout.table("planted_reference"), refs["planted_table"], float_format="%.6g")
    write_csv(layout.table("reference_model"), refs["pixel_table"], float_format="%.6g")
    t2 = table2(metrics, refs["pixel_table"])
    write_csv(layout.table("table2"), t2, float_format="%.4g")
    write_text(layout.table("table2", ".html"), t2.round(3).to_html(index=False, na_rep=""))
    clinical = load_clinical(cohort_dir / "clinical.csv")
    clinical = clinical[clinical["patient_id"].isin(split.index)]
    tnm = tnm_scores(clinical, split)
    base = _tnm_with_cis(clinical, split, tnm)
    write_json(layout.table("tnm", ".json"), base)
    cmp = compare_with_tnm(runs, tnm)
    write_csv(layout.table("tnm_comparison"), cmp, float_format="%.6g")
    delong = delong_matrix(runs)
    write_csv(layout.table("delong_matrix"), delong.reset_index(names="run"), float_format="%.4g")
    # the models shown in calibration and decision curves are chosen on training data only
    selection = select_on_training(metas, oof, no_oof, folds=folds, a_priori=a_priori_backbone)
    write_csv(layout.table("model_selection"), selection, float_format="%.6g")
    cal, dca = _curves_of_selected(selection, runs)
    calib = calibration_table(runs)
    write_csv(layout.table("calibration"), calib, float_format="%.6g")
    hybrid = {"notes": ["hybrid model not requested"], "table": pd.DataFrame(), "comparisons": pd.DataFrame(),
              "test": {}, "figure_backbone": None}
    if hybrid_folds:
        if (hybrid_dataset, hybrid_variant) not in present:
            hybrid_dataset, hybrid_variant = present[0]
        hybrid = hybrid_models(layout.root, clinical, metas, hybrid_dataset, hybrid_variant, hybrid_folds)
        write_csv(layout.table("hybrid"), hybrid["table"], float_format="%.6g")
        write_csv(layout.table("hybrid_comparisons"), hybrid["comparisons"], float_format="%.6g")
    ablation, pretraining = _pretraining(layout, runs, metrics, refs)
    finetune = finetune_ablation(layout)
    write_csv(layout.table("finetune_ablation"), finetune, float_format="%.6g")
    top = (metrics.dropna(subset=["patient_auc"]).sort_values("patient_auc", ascending=False)
           .groupby(["dataset", "variant"]).head(1))
    summary = {"runs": len(runs),
               "highest_test_auc": top[["dataset", "variant", "backbone", "patient_auc", "auc"]].to_dict("records"),
               "selected_on_training": selection[selection["selected"]].drop(columns="selected").to_dict("records"),
               "tnm": base, "weights": sorted(metrics["weights"].unique().tolist()),
               "planted_reference": refs["planted_table"] is not None, "pretraining_ablation": not ablation.empty,
               "hybrid": {k: hybrid.get(k) for k in ("dataset", "variant", "folds", "figure_backbone", "notes")}}
    write_json(layout.table("summary", ".json"), summary)
    negative = pd.read_csv(layout.table("negative_control")) if layout.table("negative_control").is_file() else None
    family_path = layout.table("negative_control_family")
    negative_family = pd.read_csv(family_path) if negative is not None and family_path.is_file() else None
    per_patient = metrics.drop(columns=["auc", "accuracy"]).rename(columns={"patient_auc": "auc",
                                                                              "patient_accuracy": "accuracy"})
    t2_patient = table2(per_patient)
    refs_summary = reference_summary(metrics, refs["pixel_table"], refs["planted_table"], negative)
    test_counts = _test_counts(metrics, runs)
    findings = design_findings(runs, {"planted risk": refs["planted"]}, tnm, clinical, read_generation_report(cohort_dir),
                               n_boot=n_boot, seed=seed)
    write_csv(layout.table("design_findings"), findings, float_format="%.6g")
    numbers = {**run_numbers(metrics, test_counts), **reference_numbers(refs_summary), **pretraining_numbers(pretraining),
               **comparison_numbers(base, cmp, selection, hybrid), **negative_control_numbers(negative, negative_family),
               **finding_numbers(findings), **finetune_numbers(finetune), "bootstrap_resamples": n_boot,
               "oof_folds": folds}
    glance = at_a_glance(metrics, selection, base, refs_summary, negative, split, clinical,
                         synthetic=refs["planted"] is not None, negative_family=negative_family)
    return StudyEvaluation(
        metrics=metrics, table2=t2, predictions=runs,
        references={"planted risk": refs["planted"], "pixel reference": refs["pixel"]},
        planted_table=refs["planted_table"], pixel_table=refs["pixel_table"], tnm=tnm, tnm_baseline=base,
        tnm_comparison=cmp, delong=delong, histories=training_histories(layout.models), selection=selection,
        calibration=cal, calibration_table=calib, decision=dca, hybrid=hybrid, ablation=ablation,
        pretraining=pretraining, summary=summary, table1=paper_form(table1(clinical, split)),
        table2_patient=t2_patient.loc[:, ~t2_patient.columns.str.endswith(("_published", "_diff"))],
        test_counts=test_counts,
        reference_summary=refs_summary, negative_control=negative, negative_family=negative_family, numbers=numbers,
        findings=findings, finetune=finetune,
        glance=glance)
