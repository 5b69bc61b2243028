"""Stage ``external``: a trained run scored, unchanged, on another centre's cohort folder.

Reads: every model and its out-of-fold scores, the image store, the pixel features and the second centre
(stage ``centre:<name>``); the profile's ``external`` block.
Writes: ``evaluation/external.csv``, ``external_summary.csv``, ``harmonisation.csv`` and ``external.json``, and
the external centre's image stores and features under ``external/<name>/``.
Serves: the book's "Does it travel?" chapter.

``npc-study evaluate --run RUNS_DIR --external-cohort DIR`` (any cohort in the project's format) writes
``RUNS_DIR/external/<cohort name>/evaluation/external.csv``. The main job, on a synthetic cohort whose
profile has an ``external`` block, generates the second synthetic centre (:mod:`npc_lib.synth.centres`) and
writes ``evaluation/external.csv``, ``evaluation/external_summary.csv`` and the harmonisation ablation
``evaluation/harmonisation.csv``. Every model (and the references, :mod:`npc_lib.analysis.external`) is
fitted on the training centre's training patients only; nothing is refitted on the external patients.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from npc_lib.analysis.evaluation import evaluate_runs, load_runs
from npc_lib.analysis.external import (PLANTED, external_pixel_reference, external_references, external_summary,
                                       external_table, tnm_frames)
from npc_lib.analysis.harmonisation import ablation_backbones, harmonisation_table
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.references import planted_image_scores
from npc_lib.atomic import write_csv, write_json
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import Cohort, load_clinical
from npc_lib.data.harmonise import fit_reference, harmonised_external_store, training_spacing
from npc_lib.data.rois import Geometry
from npc_lib.stage import Stage
from npc_lib.layout import RunLayout
from npc_lib.learn.external_scores import finished_runs, score_external_cohort, score_store

log = logging.getLogger(__name__)


def _thresholds(layout: RunLayout, metas: list[dict]) -> dict:
    """Each model's patient-level Youden threshold, chosen on its training patients' out-of-fold scores."""
    oof, _ = training_oof(layout.root, metas)
    metrics = evaluate_runs(layout.models, n_boot=0, oof=oof)
    return {(r.dataset, r.variant, r.backbone): float(r.patient_youden_threshold) for r in metrics.itertuples()}


def evaluate_external_cohort(runs_dir: RunLayout | str | Path, external_dir: str | Path, progress: bool = True,
                             out: RunLayout | None = None, table_path: Path | None = None,
                             internal_cohort: Cohort | None = None, n_boot: int = 1000,
                             harmonisation: tuple[str, bool] = ("none", False)) -> dict:
    """The external table of a run on ``external_dir`` and its internal-vs-external summary; ``harmonisation``
    is the (intensity choice, spacing resampling) applied to the external images (:mod:`npc_lib.data.harmonise`).

    Returns
    -------
    dict: ``table`` (:data:`npc_lib.analysis.external.COLUMNS` rows), ``summary`` (AUC changes with
    bootstrap CIs), ``warnings`` (what lies outside the training range), ``path`` (the table written),
    ``internal`` and ``external`` (the predictions), ``scores`` (:class:`ExternalScores`).
    """
    layout = RunLayout.of(runs_dir)
    external_dir = Path(external_dir)
    out = out or layout.external_run(external_dir.resolve().name)
    scores = score_external_cohort(layout, external_dir, progress=progress, out=out, internal_cohort=internal_cohort,
                                   harmonisation=harmonisation)
    loaded = load_runs(layout.models)
    internal = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p for m, p in loaded}
    ref = layout.read_cohort_ref()
    train_store = open_image_store(layout.image_store(ref["store"]), verify=False)
    split = layout.read_split()
    cells = {(d, v) for d, v, _ in scores.predictions}
    pix_int, pix_ext = external_pixel_reference(train_store, split, scores.store,
                                                Geometry(**train_store.manifest["geometry"]), layout.cache, out.cache,
                                                cells)
    refs_ext = external_references(scores.store, external_dir, scores.cohort.clinical, cells)
    refs_int = _internal_references(train_store, split, Path(ref["cohort"]), cells)
    internal = {**internal, **pix_int, **refs_int}
    external = {**scores.predictions, **pix_ext, **refs_ext}
    table = external_table(internal, external, _thresholds(layout, [m for m, _ in loaded]))
    summary = external_summary(internal, external, n_boot=n_boot)
    path = table_path or out.table("external")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, table, float_format="%.6g")
    write_csv(path.with_name(path.stem + "_summary.csv"), summary, float_format="%.6g")
    return {"table": table, "summary": summary, "warnings": scores.warnings, "path": path,
            "internal": internal, "external": external, "scores": scores}


def _internal_references(store, split: pd.Series, cohort_dir: Path, cells: set) -> dict:
    """The planted-risk reference and TNM stage on the run's own test patients, for the internal column."""
    out = {(d, v, PLANTED): f for (d, v), f in (planted_image_scores(store, split, cohort_dir) or {}).items()
           if (d, v) in cells}
    out.update(tnm_frames(store, load_clinical(cohort_dir / "clinical.csv"), cells, split))
    return out


def run_harmonisation_ablation(layout: RunLayout, cohort: Cohort, external_dir: Path, out: RunLayout,
                               candidates: tuple[str, ...], chosen: tuple[str, bool],
                               planted: tuple[dict, dict] | None = None, internal: dict | None = None,
                               progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Every intensity choice × spacing resampling, scored with the best backbone per dataset (highest
    mean out-of-fold training AUC over the dataset's variants among ``candidates``); writes
    ``evaluation/harmonisation.csv`` and returns it with each condition's store fingerprint (keyed
    ``"<intensity>"`` or ``"<intensity>+resample"``). ``chosen`` (intensity, resample) is the profile's;
    ``internal`` the run's predictions when already loaded."""
    from npc_lib.data.harmonise import INTENSITY_CHOICES
    runs = finished_runs(layout)
    metas = [m for m, _ in runs]
    oof, _ = training_oof(layout.root, metas)
    best = ablation_backbones(metas, oof, candidates)
    keep = [(m, r) for m, r in runs if best.get(m["config"]["dataset"]) == m["config"]["backbone"]]
    ref = layout.read_cohort_ref()
    train_store = open_image_store(layout.image_store(ref["store"]), verify=False)
    split = layout.read_split()
    if internal is None:
        internal = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p
                    for m, p in load_runs(layout.models)}
    internal = {k: p for k, p in internal.items() if (k[0], k[2]) in best.items()}
    reference = fit_reference(train_store, split.index[split.eq("train")])
    scored, stores = {}, {}
    for resample in (False, True):
        for intensity in INTENSITY_CHOICES:
            t0 = time.perf_counter()
            store = harmonised_external_store(cohort, train_store, split, out.cache, intensity, resample, reference)
            scored[(intensity, resample)] = score_store(keep, store, out.cache)[0]
            stores[intensity + ("+resample" if resample else "")] = store.fingerprint
            log.info("harmonisation %s%s scored in %.1f s", intensity, " + resampling" if resample else "",
                     time.perf_counter() - t0)
    table = harmonisation_table(internal, scored, chosen, planted)
    write_csv(layout.table("harmonisation"), table, float_format="%.6g")
    return table, stores


def run_external_validation(profile, layout: RunLayout, internal_cohort: Cohort | None = None,
                            progress: bool = True) -> dict | None:
    """The main job's external validation (a synthetic cohort whose profile has an ``external`` block):
    centre B generated under ``RUNS_DIR/centres/<name>``, every model scored there, and the harmonisation
    ablation. Writes ``external.csv``, ``external_summary.csv``, ``harmonisation.csv`` and
    ``external.json`` (settings, warnings, seconds) under ``evaluation/``."""
    ext = profile.external
    if ext is None:
        return None
    t0 = time.perf_counter()
    cohort_dir = layout.centre_cohort(ext.centre)  # generated by the stage centre:<name>
    t_synth = time.perf_counter() - t0
    out = layout.external_run(ext.centre)
    result = evaluate_external_cohort(layout, cohort_dir, progress=progress, out=out,
                                      table_path=layout.table("external"), internal_cohort=internal_cohort,
                                      harmonisation=(ext.harmonisation, ext.resample))
    t_eval = time.perf_counter() - t0 - t_synth
    harmonisation, stores = run_harmonisation_ablation(layout, result["scores"].cohort, cohort_dir, out,
                                               ext.ablation_backbones or profile.backbones,
                                               (ext.harmonisation, ext.resample),
                                               planted=tuple({k: f for k, f in side.items() if k[2] == PLANTED}
                                                             for side in (result["internal"], result["external"])),
                                               internal=result["internal"], progress=progress)
    info = {"centre": ext.centre, "patients": ext.patients, "matrix": ext.matrix, "seed": ext.seed,
            "cohort": str(cohort_dir), "harmonisation": ext.harmonisation, "resample": ext.resample,
            "warnings": result["warnings"], "store": result["scores"].store.fingerprint, "stores": stores,
            "cache": str(out.cache), "training_spacing_mm": training_spacing(
                open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False), layout.read_split()),
            "seconds": {"synthesis": round(t_synth, 1), "evaluation": round(t_eval, 1),
                        "harmonisation": round(time.perf_counter() - t0 - t_synth - t_eval, 1)}}
    write_json(layout.table("external", ".json"), info)
    log.info("external validation on centre %s in %.1f s", ext.centre, time.perf_counter() - t0)
    return {**result, "harmonisation": harmonisation, "info": info}


def validate_externally(ctx) -> list:
    """The main job's external validation on the profile's second synthetic centre."""
    res = run_external_validation(ctx.profile, ctx.layout, progress=False)
    ext = ctx.layout.external_run(ctx.profile.external.centre)
    return [ctx.layout.table(n) for n in ("external", "external_summary", "harmonisation")] + \
        [ctx.layout.table("external", ".json"), ext.cache] if res else []


def stages(ctx, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.synthetic or ctx.profile.external is None:
        return []
    needs = ("store", "pixel_features", f"centre:{ctx.profile.external.centre}",
             *sorted(k for k in known if k.startswith(("models:", "oof:"))))
    return [Stage("external", validate_externally, needs=needs, reads=("external", "backbones"), heavy=True,
                  serves="Does it travel? external validation on a second centre")]
