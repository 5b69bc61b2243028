"""Stage ``external``: a trained run scored, unchanged, on another centre's cohort folder: the tables.

Reads: every model's scores of the second centre's evaluation draw (stage ``external:scores``) and their
out-of-fold training scores (the thresholds), the image stores, the pixel features, the harmonisation chosen on the
tuning draw (stage ``harmonisation``); the profile's ``external`` block.
Writes: ``evaluation/external.csv``, ``external_summary.csv`` and ``external.json``.
Serves: the book's "Does it travel?" chapter: internal against external AUC on the evaluation draw only.

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

from npc_lib.analysis.evaluation import load_runs
from npc_lib.analysis.metrics import MetricError, patient_scores, youden_threshold
from npc_lib.analysis.external import (PLANTED, external_pixel_reference, external_references, external_summary,
                                       external_table, tnm_frames)
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.references import planted_image_scores
from npc_lib.atomic import write_csv, write_json
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import Cohort, load_clinical
from npc_lib.data.harmonise import training_spacing
from npc_lib.data.rois import Geometry
from npc_lib.stage import Stage
from npc_lib.layout import RunLayout
from npc_lib.learn.external_scores import score_external_cohort
from npc_lib.stages.harmonisation import run_harmonisation

log = logging.getLogger(__name__)


def _thresholds(layout: RunLayout, loaded: list[tuple[dict, pd.DataFrame]]) -> dict:
    """Each model's patient-level Youden threshold, chosen on its training patients' out-of-fold scores (on its
    in-sample training scores where it has none: fine-tuned runs), as the evaluation does."""
    oof, _ = training_oof(layout.root, [m for m, _ in loaded])
    out = {}
    for meta, pred in loaded:
        key = (meta["config"]["dataset"], meta["config"]["variant"], meta["config"]["backbone"])
        train = oof[key] if key in oof and oof[key]["probability"].notna().all() else pred[pred["split"] == "train"]
        try:
            pts = patient_scores(train)
            out[key] = youden_threshold(pts["label"].to_numpy(), pts["probability"].to_numpy())
        except MetricError:
            continue
    return out


def evaluate_external_cohort(runs_dir: RunLayout | str | Path, external_dir: str | Path, progress: bool = True,
                             out: RunLayout | None = None, table_path: Path | None = None,
                             internal_cohort: Cohort | None = None, n_boot: int = 1000,
                             harmonisation: tuple[str, bool] = ("none", False),
                             fit_cohort: str | Path | None = None) -> dict:
    """The external table of a run on ``external_dir`` and its internal-vs-external summary; ``harmonisation``
    is the (intensity choice, spacing resampling) applied to the external images (:mod:`npc_lib.data.harmonise`),
    its intensity map fitted on ``fit_cohort`` (another draw of the centre; default: the cohort's own pixels).

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
                                   harmonisation=harmonisation, fit_cohort=fit_cohort)
    result = external_tables(layout, external_dir, scores.predictions, scores.store, out, table_path, n_boot)
    return {**result, "warnings": scores.warnings, "scores": scores}


def external_tables(layout: RunLayout, external_dir: Path, predictions: dict, store, out: RunLayout,
                    table_path: Path | None = None, n_boot: int = 1000) -> dict:
    """The external table and summary from the models' external ``predictions`` ((dataset, variant, backbone)
    -> image rows) on ``store``, beside the references scored on both centres; written to ``table_path``
    (default ``out``'s ``external.csv``) and ``..._summary.csv``."""
    loaded = load_runs(layout.models)
    internal = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p for m, p in loaded}
    ref = layout.read_cohort_ref()
    train_store = open_image_store(layout.image_store(ref["store"]), verify=False)
    split = layout.read_split()
    cells = {(d, v) for d, v, _ in predictions}
    pix_int, pix_ext = external_pixel_reference(train_store, split, store,
                                                Geometry(**train_store.manifest["geometry"]), layout.cache, out.cache,
                                                cells)
    refs_ext = external_references(store, external_dir, load_clinical(Path(external_dir) / "clinical.csv"), cells)
    refs_int = _internal_references(train_store, split, Path(ref["cohort"]), cells)
    internal = {**internal, **pix_int, **refs_int}
    external = {**predictions, **pix_ext, **refs_ext}
    table = external_table(internal, external, _thresholds(layout, loaded))
    summary = external_summary(internal, external, n_boot=n_boot)
    path = table_path or out.table("external")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, table, float_format="%.6g")
    write_csv(path.with_name(path.stem + "_summary.csv"), summary, float_format="%.6g")
    return {"table": table, "summary": summary, "path": path, "internal": internal, "external": external}


def _internal_references(store, split: pd.Series, cohort_dir: Path, cells: set) -> dict:
    """The planted-risk reference and TNM stage on the run's own test patients, for the internal column."""
    out = {(d, v, PLANTED): f for (d, v), f in (planted_image_scores(store, split, cohort_dir) or {}).items()
           if (d, v) in cells}
    out.update(tnm_frames(store, load_clinical(cohort_dir / "clinical.csv"), cells, split))
    return out


def validate_externally(ctx) -> list:
    """The external tables: the models' scores of the evaluation draw of the second centre beside the references
    on both centres, with the harmonisation chosen on its tuning draw."""
    import json
    t0 = time.perf_counter()
    ext, layout = ctx.profile.external, ctx.layout
    choice = json.loads(layout.table("harmonisation", ".json").read_text())
    chosen = run_harmonisation(layout)
    cohort_dir, tuning = layout.centre_cohort(ext.centre), layout.tuning_cohort(ext.centre)
    out = layout.external_run(ext.centre)
    record = json.loads((out.external_store_record).read_text())
    store = open_image_store(out.image_store(record["store"]), verify=False)
    frame = pd.read_parquet(out.external_scores)
    predictions = {key: part.drop(columns=["dataset", "variant", "backbone"]).reset_index(drop=True)
                   for key, part in frame.groupby(["dataset", "variant", "backbone"], sort=True)}
    external_tables(layout, cohort_dir, predictions, store, out, layout.table("external"))
    prep_store = open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False)
    info = {"centre": ext.centre, "patients": ext.patients, "matrix": ext.matrix, "seed": ext.seed,
            "cohort": str(cohort_dir), "tuning_cohort": str(tuning) if tuning.is_dir() else None,
            "tuning_patients": ext.tuning_patients if tuning.is_dir() else None,
            "harmonisation": chosen[0], "resample": chosen[1], "how_chosen": choice["how"],
            "warnings": record["warnings"], "store": record["store"], "cache": str(out.cache),
            "training_spacing_mm": training_spacing(prep_store, layout.read_split()),
            "seconds": round(time.perf_counter() - t0, 1)}
    write_json(layout.table("external", ".json"), info)
    return [layout.table("external"), layout.table("external_summary"), layout.table("external", ".json")]


def stages(ctx, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.synthetic or ctx.profile.external is None:
        return []
    oof = tuple(sorted(k for k in known if k.startswith("oof:")))
    return [Stage("external", validate_externally, needs=("external:scores", "pixel_features", *oof),
                  reads=("external", "backbones"), serves="Does it travel? external validation on a second centre")]
