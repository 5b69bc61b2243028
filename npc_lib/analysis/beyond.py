"""Beyond the paper: the split (repeated resplits) and the clock (time to DM) for a finished study.

:func:`beyond_study` reads the finished runs, their cached features and out-of-fold training
scores (written by :func:`npc_lib.analysis.study_evaluation.evaluate_study`), refits the heads on
repeated resplits (:mod:`npc_lib.analysis.resplits`) and, where the clinical table has
``dm_months``, scores every model, TNM stage and the planted-risk reference for time to DM
(:mod:`npc_lib.analysis.survival`). Tables go to ``evaluation/resplits.csv``,
``evaluation/resplit_summary.csv`` and ``evaluation/survival.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from npc_lib.analysis.evaluation import evaluate_runs, load_runs
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.references import planted_image_scores
from npc_lib.analysis.resplits import TNM, cell_summary, first_place_counts, resplit_aucs, resplit_summary
from npc_lib.analysis.survival import SURVIVAL_COLUMNS, km_by_threshold, patient_frame, survival_row
from npc_lib.atomic import write_csv
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import load_clinical
from npc_lib.layout import RunLayout

PLANTED = "planted risk"


@dataclass
class Beyond:
    """What :func:`beyond_study` computed."""

    resplits: pd.DataFrame          # every split × run × level (``resplits.resplit_aucs``)
    resplit_summary: pd.DataFrame   # per run (``resplits.resplit_summary``)
    cells: pd.DataFrame             # per dataset × variant (``resplits.cell_summary``)
    first_places: pd.DataFrame      # how often each dataset × variant ranks first
    metrics: pd.DataFrame           # the runs' own test metrics
    survival: pd.DataFrame | None = None  # every model, TNM stage and the planted reference
    survival_shown: pd.DataFrame | None = None  # the training-chosen models, TNM and the reference
    km: dict = field(default_factory=dict)      # training-chosen run key -> Kaplan–Meier result
    numbers: dict = field(default_factory=dict)  # what the book quotes
    notes: list[str] = field(default_factory=list)


def beyond_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None, n_splits: int = 20,
                 n_boot: int = 200, jobs: int | None = None) -> Beyond:
    """Resplits and time-to-DM analysis of a finished study.

    Parameters
    ----------
    runs_dir : the runs folder
    cohort_dir : the cohort folder (default: the one in ``cohort.json``)
    n_splits : resplits (0: none)
    n_boot : bootstrap resamples of each C-index interval
    jobs : processes for the resplits (default: up to 2)

    Returns
    -------
    :class:`Beyond`
    """
    layout = RunLayout.of(runs_dir)
    ref = layout.read_cohort_ref()
    cohort_dir = Path(cohort_dir or ref["cohort"])
    loaded = load_runs(layout.models)
    metas = [m for m, _ in loaded]
    clinical = load_clinical(cohort_dir / "clinical.csv")
    split = layout.read_split()
    clinical = clinical[clinical["patient_id"].isin(split.index)]
    cfg = metas[0]["config"]
    metrics = (pd.read_csv(layout.table("metrics")) if layout.table("metrics").is_file()
               else evaluate_runs(layout.models, n_boot=0))
    notes = []
    resplits = resplit_aucs(layout.root, metas, clinical, n_splits, int(cfg["split"]["seed"]),
                            float(cfg["split"]["test_fraction"]), jobs=jobs) if n_splits else pd.DataFrame()
    if n_splits:
        write_csv(layout.table("resplits"), resplits, float_format="%.6g")
        summary = resplit_summary(resplits, metrics)
        write_csv(layout.table("resplit_summary"), summary, float_format="%.6g")
        firsts, cells = first_place_counts(resplits), cell_summary(resplits, metrics)
        numbers = {"n_splits": n_splits, "width": float((cells["auc_97_5"] - cells["auc_2_5"]).median()),
                   "beats_tnm": float(cells["share_beating_tnm"].mean()),
                   "top": f"{firsts['dataset'].iloc[0]}, {firsts['variant'].iloc[0]}"}
    else:
        summary, firsts, cells, numbers = pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}
        notes.append("no resplits requested (profile key resplits: 0)")
    out = Beyond(resplits, summary, cells, firsts, metrics, numbers=numbers, notes=notes)
    if "dm_months" not in clinical or clinical["dm_months"].isna().any():
        out.notes.append("the clinical table has no dm_months column: time to DM is not analysed")
        return out
    oof, _ = training_oof(layout.root, metas)
    rows, frames = [], {}
    for meta, pred in loaded:
        c = meta["config"]
        key = (c["dataset"], c["variant"], c["backbone"])
        train_images = oof.get(key, pred[pred["split"] == "train"])
        train = patient_frame(train_images, clinical)
        test = patient_frame(pred[pred["split"] == "test"], clinical)
        frames[key] = (train, test)
        rows.append({"dataset": key[0], "variant": key[1], "backbone": key[2], "level": "patient",
                     **survival_row(train, test, n_boot=n_boot)})
    for (d, v), (train, test) in {(k[0], k[1]): f for k, f in frames.items()}.items():
        rows.append({"dataset": d, "variant": v, "backbone": TNM, "level": "patient",
                     **survival_row(train.assign(score=train["stage"]), test.assign(score=test["stage"]),
                                    n_boot=n_boot, with_stage=False)})
    store = open_image_store(layout.image_store(ref["store"]), verify=False)
    planted = planted_image_scores(store, split, cohort_dir, datasets=sorted({k[0] for k in frames}),
                                   variants=sorted({k[1] for k in frames})) or {}
    for (d, v), frame in planted.items():
        rows.append({"dataset": d, "variant": v, "backbone": PLANTED, "level": "patient",
                     **survival_row(patient_frame(frame[frame["split"] == "train"], clinical),
                                    patient_frame(frame[frame["split"] == "test"], clinical), n_boot=n_boot)})
    out.survival = pd.DataFrame(rows).reindex(columns=SURVIVAL_COLUMNS)
    write_csv(layout.table("survival"), out.survival, float_format="%.6g")
    chosen = [k for k in _training_choice(layout) if k in frames]
    for key in chosen:
        train, test = frames[key]
        out.km[key] = km_by_threshold(test["months"], test["event"], test["score"], float(train["score"].median()))
    s = out.survival
    out.survival_shown = s[s["backbone"].isin([TNM, PLANTED]) | s.set_index(["dataset", "variant", "backbone"]).index
                           .isin(chosen)].sort_values(["dataset", "variant"], kind="stable")
    out.numbers.update(c_models=float(s.loc[~s["backbone"].isin([TNM, PLANTED]), "c_index"].mean()),
                       c_tnm=float(s.loc[s["backbone"] == TNM, "c_index"].mean()),
                       c_planted=float(s.loc[s["backbone"] == PLANTED, "c_index"].mean()))
    return out


def _training_choice(layout: RunLayout) -> list[tuple[str, str, str]]:
    """The models chosen without the test set (``evaluation/model_selection.csv``), if any."""
    path = layout.table("model_selection")
    if not path.is_file():
        return []
    sel = pd.read_csv(path)
    return [tuple(r) for r in sel.loc[sel["selected"], ["dataset", "variant", "backbone"]].itertuples(index=False)]
