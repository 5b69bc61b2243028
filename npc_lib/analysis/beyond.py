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
from npc_lib.analysis.resplits import (RESPLIT_COLUMNS, TNM, cell_summary, first_place_counts, resplit_aucs,
                                      resplit_summary)
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


def _study_inputs(layout: RunLayout, cohort_dir=None):
    ref = layout.read_cohort_ref()
    cohort_dir = Path(cohort_dir or ref["cohort"])
    split = layout.read_split()
    clinical = load_clinical(cohort_dir / "clinical.csv")
    return cohort_dir, split, clinical[clinical["patient_id"].isin(split.index)]


def resplit_part(runs_dir: RunLayout | str | Path, backbone: str, n_splits: int, arm: str = "main",
                 cohort_dir: str | Path | None = None) -> pd.DataFrame:
    """One backbone's share of the resplits: its heads refitted and scored on every resplit (no TNM rows).

    Parameters
    ----------
    runs_dir : the runs folder
    backbone : the backbone whose runs are refitted
    n_splits : resplits
    arm : ``main`` (the study's runs) or ``random`` (the pretraining ablation's Lite0 from random weights)
    cohort_dir : the cohort folder (default: the one in ``cohort.json``)

    Returns
    -------
    DataFrame with :data:`npc_lib.analysis.resplits.RESPLIT_COLUMNS` (empty without such runs).
    """
    layout = RunLayout.of(runs_dir)
    _, _, clinical = _study_inputs(layout, cohort_dir)
    models = layout.models if arm == "main" else layout.ablation.models
    metas = [m for m, _ in load_runs(models, [backbone]) if m["config"]["backbone"] == backbone] \
        if models.is_dir() else []
    if not metas or not n_splits:
        return pd.DataFrame(columns=RESPLIT_COLUMNS)
    cfg = metas[0]["config"]
    return resplit_aucs(layout.root, metas, clinical, n_splits, int(cfg["split"]["seed"]),
                        float(cfg["split"]["test_fraction"]), jobs=1, tnm=False)


def resplit_study(runs_dir: RunLayout | str | Path, n_splits: int, parts: list[pd.DataFrame],
                  random_parts: list[pd.DataFrame] = (), cohort_dir: str | Path | None = None) -> Beyond:
    """The resplit tables from every backbone's part (:func:`resplit_part`), TNM stage on the same splits and the
    pretraining pairs; writes them under ``evaluation/`` and returns a :class:`Beyond` without the clock."""
    layout = RunLayout.of(runs_dir)
    _, _, clinical = _study_inputs(layout, cohort_dir)
    metas = [m for m, _ in load_runs(layout.models)]
    cfg = metas[0]["config"]
    metrics = (pd.read_csv(layout.table("metrics")) if layout.table("metrics").is_file()
               else evaluate_runs(layout.models, n_boot=0))
    notes = []
    if not n_splits or not any(len(p) for p in parts):
        notes.append("no resplits requested (profile key resplits: 0)" if not n_splits else
                     "no head-mode runs to resplit (fine-tuned runs are not resplit: that would retrain every backbone)")
        return Beyond(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), metrics, notes=notes,
                      pretraining_numbers=pretraining_resplit_numbers(pd.DataFrame()))
    tnm = resplit_aucs(layout.root, metas, clinical, n_splits, int(cfg["split"]["seed"]),
                       float(cfg["split"]["test_fraction"]), jobs=1, tnm=True, models=False)
    order = ["split", "backbone", "dataset", "variant", "level"]
    resplits = pd.concat([*[p for p in parts if len(p)], tnm], ignore_index=True).sort_values(
        order, kind="stable").reset_index(drop=True)
    pre_pairs, pre_summary = pd.DataFrame(), pd.DataFrame()
    random = [p for p in random_parts if len(p)]
    if random:  # the same Lite0 heads from random weights, on the same splits
        random = pd.concat(random, ignore_index=True).sort_values(order, kind="stable").reset_index(drop=True)
        pre_pairs = pretraining_pairs(resplits, random)
        pre_summary = pretraining_pair_summary(pre_pairs, float(cfg["split"]["test_fraction"]))
        write_csv(layout.table("pretraining_resplits"), pre_pairs, float_format="%.6g")
        write_csv(layout.table("pretraining_resplit_summary"), pre_summary, float_format="%.6g")
    write_csv(layout.table("resplits"), resplits, float_format="%.6g")
    summary = resplit_summary(resplits, metrics)
    write_csv(layout.table("resplit_summary"), summary, float_format="%.6g")
    firsts, cells = first_place_counts(resplits), cell_summary(resplits, metrics)
    numbers = {"n_splits": n_splits, "width": float((cells["auc_97_5"] - cells["auc_2_5"]).median()),
               "beats_tnm": float(cells["share_beating_tnm"].mean()),
               "top": f"{firsts['dataset'].iloc[0]}, {firsts['variant'].iloc[0]}"}
    return Beyond(resplits, summary, cells, firsts, metrics, numbers=numbers, notes=notes, pretraining_pairs=pre_pairs,
                  pretraining_summary=pre_summary, pretraining_numbers=pretraining_resplit_numbers(pre_summary))


def beyond_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None, n_splits: int = 20,
                 n_boot: int = 200, jobs: int | None = None) -> Beyond:
    """Resplits and time-to-DM analysis of a finished study, in this process (the main job runs them as the
    ``resplits`` and ``clock`` stages, each backbone's resplits in a stage of its own).

    Parameters
    ----------
    runs_dir : the runs folder
    cohort_dir : the cohort folder (default: the one in ``cohort.json``)
    n_splits : resplits (0: none)
    n_boot : bootstrap resamples of each C-index interval
    jobs : unused (kept for callers of earlier versions)

    Returns
    -------
    :class:`Beyond`
    """
    layout = RunLayout.of(runs_dir)
    backbones = sorted({m["config"]["backbone"] for m, _ in load_runs(layout.models)})
    parts = [resplit_part(layout, b, n_splits, cohort_dir=cohort_dir) for b in backbones]
    random = [resplit_part(layout, b, n_splits, "random", cohort_dir) for b in backbones]
    out = resplit_study(layout, n_splits, parts, random, cohort_dir)
    return with_clock(out, clock_study(layout, cohort_dir, n_boot))


def with_clock(out: Beyond, clock: dict) -> Beyond:
    """``out`` with the time-to-DM results of :func:`clock_study`."""
    out.survival, out.survival_shown, out.km, out.clock = (clock["survival"], clock["survival_shown"], clock["km"],
                                                           clock["clock"])
    out.notes = [*out.notes, *clock["notes"]]
    return out


def load_beyond(runs_dir: RunLayout | str | Path, n_splits: int, resplits_file: Path, clock_file: Path) -> Beyond:
    """The resplit and clock results the main job's stages saved (pickles), or computed here when a file is
    missing (a notebook opened on its own).

    Parameters
    ----------
    runs_dir : the runs folder
    n_splits : resplits, when they must be computed here
    resplits_file, clock_file : the stages' saved results

    Returns
    -------
    :class:`Beyond`
    """
    from npc_lib.results import load_result
    layout = RunLayout.of(runs_dir)
    backbones = lambda: sorted({m["config"]["backbone"] for m, _ in load_runs(layout.models)})  # noqa: E731
    res = load_result(resplits_file, lambda: resplit_study(
        layout, n_splits, [resplit_part(layout, b, n_splits) for b in backbones()],
        [resplit_part(layout, b, n_splits, "random") for b in backbones()]))
    return with_clock(res, load_result(clock_file, lambda: clock_study(layout)))


def clock_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None, n_boot: int = 200) -> dict:
    """Time to DM: every model, TNM stage and the planted references scored with Harrell's C, Cox models and
    Kaplan–Meier risk groups (training-median cut); writes ``evaluation/survival.csv``.

    Returns
    -------
    dict: ``survival`` (every row, or None without ``dm_months``), ``survival_shown`` (the training-chosen
    models, TNM and the references), ``km`` (chosen run key -> Kaplan–Meier result), ``clock`` (what the book
    quotes) and ``notes``.
    """
    layout = RunLayout.of(runs_dir)
    cohort_dir, split, clinical = _study_inputs(layout, cohort_dir)
    out = {"survival": None, "survival_shown": None, "km": {}, "clock": dict.fromkeys(CLOCK_KEYS, "n/a"), "notes": []}
    if "dm_months" not in clinical or clinical["dm_months"].isna().any():
        out["notes"].append("the clinical table has no dm_months column: time to DM is not analysed")
        return out
    loaded = load_runs(layout.models)
    metas = [m for m, _ in loaded]
    oof, _ = training_oof(layout.root, metas, with_test=True)
    rows, frames = [], {}
    for meta, pred in loaded:
        c = meta["config"]
        key = (c["dataset"], c["variant"], c["backbone"])
        # training scores out of fold only: in-sample scores of a fitted network would flatter its Cox model
        folds = oof.get(key)
        train = patient_frame(folds[folds["split"] == "train"], clinical) if folds is not None else None
        # the Kaplan–Meier cut and the Cox model, fitted on out-of-fold scores, meet test scores of the same folds
        on_train_scale = patient_frame(folds[folds["split"] == "test"], clinical) if folds is not None else None
        test = patient_frame(pred[pred["split"] == "test"], clinical)
        frames[key] = (train, test, on_train_scale)
        rows.append({"dataset": key[0], "variant": key[1], "backbone": key[2], "level": "patient",
                     **survival_row(train, test, n_boot=n_boot, test_on_train_scale=on_train_scale)})
    everyone = patient_frame(pd.DataFrame({"patient_id": split.index, "probability": 0.0}), clinical)
    by_split = {name: everyone[everyone["patient_id"].map(split) == name] for name in ("train", "test")}
    for (d, v), (_, test, _) in {(k[0], k[1]): f for k, f in frames.items()}.items():
        train = by_split["train"]
        rows.append({"dataset": d, "variant": v, "backbone": TNM, "level": "patient",
                     **survival_row(train.assign(score=train["stage"]), test.assign(score=test["stage"]),
                                    n_boot=n_boot, with_stage=False)})
    timing = _planted_timing(cohort_dir, by_split)
    if timing is not None:
        rows.append({"dataset": "all patients", "variant": "", "backbone": PLANTED_TIMING, "level": "patient",
                     **survival_row(*timing, n_boot=n_boot)})
    store = open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False)
    planted = planted_image_scores(store, split, cohort_dir, datasets=sorted({k[0] for k in frames}),
                                   variants=sorted({k[1] for k in frames})) or {}
    for (d, v), frame in planted.items():
        rows.append({"dataset": d, "variant": v, "backbone": PLANTED, "level": "patient",
                     **survival_row(patient_frame(frame[frame["split"] == "train"], clinical),
                                    patient_frame(frame[frame["split"] == "test"], clinical), n_boot=n_boot)})
    s = pd.DataFrame(rows).reindex(columns=SURVIVAL_COLUMNS)
    write_csv(layout.table("survival"), s, float_format="%.6g")
    chosen = [k for k in _training_choice(layout) if k in frames]
    for key in chosen:
        train, _, on_train_scale = frames[key]
        if train is not None:
            out["km"][key] = km_by_threshold(on_train_scale["months"], on_train_scale["event"],
                                             on_train_scale["score"], float(train["score"].median()))
    out["survival"] = s
    out["survival_shown"] = s[s["backbone"].isin([TNM, PLANTED, PLANTED_TIMING])
                              | s.set_index(["dataset", "variant", "backbone"]).index.isin(chosen)
                              ].sort_values(["dataset", "variant"], kind="stable")
    out["clock"] = survival_numbers(s, chosen)
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
