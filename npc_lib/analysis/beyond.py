"""Beyond the paper: the split (repeated resplits) and the clock (time to DM) for a finished study.

:func:`beyond_study` reads the finished runs, their cached features and out-of-fold training
scores (written by :func:`npc_lib.analysis.study_evaluation.evaluate_study`), refits the heads on
repeated resplits (:mod:`npc_lib.analysis.resplits`) and, where the clinical table has
``dm_months``, scores every model, TNM stage and the planted-risk reference for time to DM
(:mod:`npc_lib.analysis.survival`). Tables go to ``evaluation/resplits.csv``,
``evaluation/resplit_summary.csv``, ``evaluation/pretraining_resplits.csv`` (EfficientNet-Lite0 with ImageNet
against random weights on every resplit; :mod:`npc_lib.analysis.pretraining_resplits`) and
``evaluation/survival.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from npc_lib.analysis.evaluation import evaluate_runs, load_runs
from npc_lib.analysis.hybrid import training_oof
from npc_lib.analysis.pretraining_resplits import (pretraining_pair_summary, pretraining_pairs,
                                                   pretraining_resplit_numbers)
from npc_lib.analysis.references import planted_image_scores
from npc_lib.analysis.resplits import TNM, cell_summary, first_place_counts, resplit_aucs, resplit_summary
from npc_lib.analysis.survival import SURVIVAL_COLUMNS, km_by_threshold, patient_frame, survival_row
from npc_lib.atomic import write_csv
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import load_clinical
from npc_lib.layout import RunLayout

PLANTED = "planted risk"
PLANTED_TIMING = "planted timing"  # the generator's timing score: when DM comes, apart from whether
CLOCK_KEYS = ("c_models", "c_events_models", "c_tnm", "c_events_tnm", "c_planted", "c_events_planted", "c_timing",
              "c_events_timing", "surv_test_events", "surv_test_dm", "surv_train_events")


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
    numbers: dict = field(default_factory=dict)  # what the book quotes of the resplits
    clock: dict = field(default_factory=lambda: dict.fromkeys(CLOCK_KEYS, "n/a"))  # ... and of time to DM
    pretraining_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)  # ImageNet vs random Lite0 per split
    pretraining_summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # ... per dataset × variant × level
    pretraining_numbers: dict = field(default_factory=dict)  # ... what the book quotes of it
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
    pre_pairs, pre_summary = pd.DataFrame(), pd.DataFrame()
    ablation = [m for m, _ in load_runs(layout.ablation.models)] if layout.ablation.models.is_dir() else []
    if n_splits and ablation and len(resplits):  # the same Lite0 heads from random weights, on the same splits
        random = resplit_aucs(layout.root, ablation, clinical, n_splits, int(cfg["split"]["seed"]),
                              float(cfg["split"]["test_fraction"]), jobs=jobs)
        pre_pairs = pretraining_pairs(resplits, random)
        pre_summary = pretraining_pair_summary(pre_pairs)
        write_csv(layout.table("pretraining_resplits"), pre_pairs, float_format="%.6g")
        write_csv(layout.table("pretraining_resplit_summary"), pre_summary, float_format="%.6g")
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
    out = Beyond(resplits, summary, cells, firsts, metrics, numbers=numbers, notes=notes, pretraining_pairs=pre_pairs,
                 pretraining_summary=pre_summary, pretraining_numbers=pretraining_resplit_numbers(pre_summary))
    if "dm_months" not in clinical or clinical["dm_months"].isna().any():
        out.notes.append("the clinical table has no dm_months column: time to DM is not analysed")
        return out
    oof, _ = training_oof(layout.root, metas)
    rows, frames = [], {}
    for meta, pred in loaded:
        c = meta["config"]
        key = (c["dataset"], c["variant"], c["backbone"])
        # training scores out of fold only: in-sample scores of a fitted network would flatter its Cox model
        train = patient_frame(oof[key], clinical) if key in oof else None
        test = patient_frame(pred[pred["split"] == "test"], clinical)
        frames[key] = (train, test)
        rows.append({"dataset": key[0], "variant": key[1], "backbone": key[2], "level": "patient",
                     **survival_row(train, test, n_boot=n_boot)})
    everyone = patient_frame(pd.DataFrame({"patient_id": split.index, "probability": 0.0}), clinical)
    by_split = {name: everyone[everyone["patient_id"].map(split) == name] for name in ("train", "test")}
    for (d, v), (_, test) in {(k[0], k[1]): f for k, f in frames.items()}.items():
        train = by_split["train"]
        rows.append({"dataset": d, "variant": v, "backbone": TNM, "level": "patient",
                     **survival_row(train.assign(score=train["stage"]), test.assign(score=test["stage"]),
                                    n_boot=n_boot, with_stage=False)})
    timing = _planted_timing(cohort_dir, by_split)
    if timing is not None:
        rows.append({"dataset": "all patients", "variant": "", "backbone": PLANTED_TIMING, "level": "patient",
                     **survival_row(*timing, n_boot=n_boot)})
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
        if train is not None:
            out.km[key] = km_by_threshold(test["months"], test["event"], test["score"], float(train["score"].median()))
    s = out.survival
    out.survival_shown = s[s["backbone"].isin([TNM, PLANTED, PLANTED_TIMING])
                           | s.set_index(["dataset", "variant", "backbone"]).index.isin(chosen)
                           ].sort_values(["dataset", "variant"], kind="stable")
    out.clock = survival_numbers(s, chosen)
    return out


def _planted_timing(cohort_dir: Path, by_split: dict) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Train and test patient frames scored by the generator's planted timing score (synthetic cohorts)."""
    path = Path(cohort_dir) / "truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"patient_id": str})
    if "timing_score" not in truth:
        return None
    score = truth.set_index("patient_id")["timing_score"]
    return tuple(f.assign(score=score.reindex(f["patient_id"]).to_numpy()) for f in (by_split["train"], by_split["test"]))


def _training_choice(layout: RunLayout) -> list[tuple[str, str, str]]:
    """The models chosen without the test set (``evaluation/model_selection.csv``), if any."""
    path = layout.table("model_selection")
    if not path.is_file():
        return []
    sel = pd.read_csv(path)
    return [tuple(r) for r in sel.loc[sel["selected"], ["dataset", "variant", "backbone"]].itertuples(index=False)]


def survival_numbers(s: pd.DataFrame, chosen: list[tuple[str, str, str]]) -> dict:
    """What the clock chapter quotes: C-indices overall and among DM patients for the models chosen on
    training data (mean), TNM stage, the planted-risk reference (mean over datasets) and the planted timing
    score, with the patient and event counts of the test split."""
    def ci(rows: pd.DataFrame, col: str, low: str, high: str) -> str:
        if len(rows) != 1 or pd.isna(rows[col].iloc[0]):
            return f"{rows[col].mean():.2f}" if len(rows) and rows[col].notna().any() else "n/a"
        r = rows.iloc[0]
        return f"{r[col]:.2f} ({r[low]:.2f}–{r[high]:.2f})" if pd.notna(r[low]) else f"{r[col]:.2f} (no interval)"

    key = s.set_index(["dataset", "variant", "backbone"]).index
    models = s[key.isin(chosen)]
    tnm, planted, timing = (s[s["backbone"] == b] for b in (TNM, PLANTED, PLANTED_TIMING))
    first = timing.iloc[0] if len(timing) else (s.iloc[0] if len(s) else None)
    return {"c_models": f"{models['c_index'].mean():.2f}" if len(models) else "n/a",
            "c_events_models": f"{models['c_index_events'].mean():.2f}" if len(models) else "n/a",
            "c_tnm": f"{tnm['c_index'].mean():.2f}" if len(tnm) else "n/a",
            "c_events_tnm": f"{tnm['c_index_events'].mean():.2f}" if len(tnm) else "n/a",
            "c_planted": f"{planted['c_index'].mean():.2f}" if len(planted) else "n/a",
            "c_events_planted": f"{planted['c_index_events'].mean():.2f}" if len(planted) else "n/a",
            "c_timing": ci(timing, "c_index", "c_low", "c_high"),
            "c_events_timing": ci(timing, "c_index_events", "c_events_low", "c_events_high"),
            "surv_test_events": int(first["test_events"]) if first is not None else "n/a",
            "surv_test_dm": int(first["test_dm_patients"]) if first is not None else "n/a",
            "surv_train_events": int(first["train_events"]) if first is not None else "n/a"}
