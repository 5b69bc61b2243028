"""Evaluate a trained run on another site's cohort folder (``npc-study evaluate RUNS_DIR --external-cohort DIR``).

Scores every finished model of the run on the external cohort (:mod:`npc_lib.learn.external_scores`), adds
the references (:mod:`npc_lib.analysis.external`) on the same external patients, and writes
``RUNS_DIR/external/<cohort name>/evaluation/external.csv``. Nothing is refitted on the external patients.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from npc_lib.analysis.evaluation import evaluate_runs, load_runs
from npc_lib.analysis.external import (PLANTED, external_pixel_reference, external_references, external_table,
                                       tnm_frames)
from npc_lib.analysis.references import planted_image_scores
from npc_lib.atomic import write_csv
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import load_clinical
from npc_lib.data.rois import Geometry
from npc_lib.layout import RunLayout
from npc_lib.learn.external_scores import score_external_cohort


def evaluate_external_cohort(runs_dir: RunLayout | str | Path, external_dir: str | Path,
                             progress: bool = True) -> tuple[pd.DataFrame, list[str], Path]:
    """The external table of a run on ``external_dir`` (written under the run folder).

    Returns
    -------
    ``(table, warnings, path)``: :data:`npc_lib.analysis.external.COLUMNS` rows, what lies outside the
    training range, and where the table was written.
    """
    layout = RunLayout.of(runs_dir)
    external_dir = Path(external_dir)
    out = RunLayout(layout.root / "external" / external_dir.resolve().name)
    scores = score_external_cohort(layout, external_dir, progress=progress, out=out)
    internal = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): p
                for m, p in load_runs(layout.models)}
    metrics = pd.read_csv(layout.table("metrics")) if layout.table("metrics").is_file() \
        else evaluate_runs(layout.models, n_boot=0)
    thresholds = {(r.dataset, r.variant, r.backbone): float(r.patient_youden_threshold) for r in metrics.itertuples()}
    ref = layout.read_cohort_ref()
    train_store = open_image_store(layout.image_store(ref["store"]), verify=False)
    split = layout.read_split()
    cells = {(d, v) for d, v, _ in scores.predictions}
    pix_int, pix_ext = external_pixel_reference(train_store, split, scores.store,
                                                Geometry(**train_store.manifest["geometry"]), layout.cache, out.cache,
                                                cells)
    refs_ext = external_references(scores.store, external_dir, scores.cohort.clinical, cells)
    refs_int = _internal_references(train_store, split, Path(ref["cohort"]), cells)
    table = external_table({**internal, **pix_int, **refs_int}, {**scores.predictions, **pix_ext, **refs_ext},
                           thresholds)
    path = out.table("external")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, table, float_format="%.6g")
    return table, scores.warnings, path


def _internal_references(store, split: pd.Series, cohort_dir: Path, cells: set) -> dict:
    """The planted-risk reference and TNM stage on the run's own test patients, for the internal column."""
    out = {(d, v, PLANTED): f for (d, v), f in (planted_image_scores(store, split, cohort_dir) or {}).items()
           if (d, v) in cells}
    out.update(tnm_frames(store, load_clinical(cohort_dir / "clinical.csv"), cells, split))
    return out
