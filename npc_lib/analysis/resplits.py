"""How much a test AUC owes to the one split: the same models refitted on repeated resplits.

``R`` stratified patient-level resplits (the run's test fraction, stratified by DM, seeds
``seed + 1 … seed + R``) reuse each run's cached features; per split every head of the grid is
refitted on that split's training patients (standardisation included, stacked NumPy fits, the
run's own settings) and scored on its test patients at image and patient level, next to TNM
stage (IV vs I–III) on the same test patients. Fine-tuned runs have no cached features and are
not resplit (retraining backbones R times is a GPU job); they are listed as skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from npc_lib.children import spawn_pool
from npc_lib.data.cache import open_image_store
from npc_lib.data.split import patient_split
from npc_lib.layout import RunLayout
from npc_lib.learn.headfit import standardise
from npc_lib.learn.stacked_heads import HeadTask, fit_heads
from npc_lib.learn.train import dataset_view
from npc_lib.vocabulary import LITE0, PAPER_BACKBONES

TNM = "TNM stage"
RESPLIT_COLUMNS = ["split", "dataset", "variant", "backbone", "level", "auc"]


def resplit(clinical: pd.DataFrame, r: int, seed: int, test_fraction: float) -> pd.Series:
    """The ``r``-th resplit (1-based): patient_id -> train/test, stratified by DM."""
    return patient_split(clinical[["patient_id", "dm"]], seed=seed + r, test_fraction=test_fraction)


def _auc(y, s) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def _features(layout: RunLayout, meta: dict) -> np.ndarray:
    path = layout.features(meta["store_fingerprint"]) / meta["features"] / f"{meta['config']['variant']}.npy"
    return np.load(path, mmap_mode="r")


def resplit_aucs(runs_dir: RunLayout | str | Path, metas: list[dict], clinical: pd.DataFrame, n_splits: int, seed: int,
                 test_fraction: float, jobs: int | None = None, tnm: bool = True, models: bool = True) -> pd.DataFrame:
    """Test AUCs of every head-mode run and of TNM stage on ``n_splits`` resplits.

    Parameters
    ----------
    runs_dir : the runs folder (image stores and feature caches)
    metas : the runs' ``run.json``
    clinical : the clinical table (``patient_id, dm, overall_stage``)
    n_splits, seed, test_fraction : resplits ``seed + 1 … seed + n_splits`` at this test fraction
    jobs : processes the splits are shared out to (default: 1; the main job shares the backbones out instead)
    tnm : add the ``TNM stage`` rows (per split × dataset, patient level, repeated for each variant)
    models : refit and score the runs (False: the TNM rows alone)

    Returns
    -------
    DataFrame with ``RESPLIT_COLUMNS``: one row per split × run × level, plus the ``TNM stage`` rows.
    """
    jobs = max(1, min(jobs or 1, n_splits))
    chunks = [list(range(1 + j, n_splits + 1, jobs)) for j in range(jobs)]
    if jobs == 1:
        parts = [_resplit_chunk(runs_dir, metas, clinical, chunks[0], seed, test_fraction, tnm, models)]
    else:  # the splits are independent: share them out to processes (NumPy fits use one core each)
        with spawn_pool(jobs) as pool:
            parts = pool.starmap(_resplit_chunk, [(runs_dir, metas, clinical, c, seed, test_fraction, tnm, models)
                                                  for c in chunks])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["split", "backbone", "dataset", "variant", "level"], kind="stable").reset_index(drop=True)


def _resplit_chunk(runs_dir, metas: list[dict], clinical: pd.DataFrame, splits: list[int], seed: int,
                   test_fraction: float, tnm: bool = True, models: bool = True) -> pd.DataFrame:
    layout = RunLayout.of(runs_dir)
    head = [m for m in metas if m.get("mode") == "head"]
    stores = {fp: open_image_store(layout.image_store(fp), verify=False)
              for fp in {m["store_fingerprint"] for m in head}}
    by_backbone: dict[str, list[dict]] = {}
    for m in head:
        by_backbone.setdefault(m["config"]["backbone"], []).append(m)
    feats = {id(m): _features(layout, m) for m in head} if models else {}
    stage_iv = clinical.set_index("patient_id")["overall_stage"].eq("IV").astype(int)
    rows = []
    for r in splits:
        split = resplit(clinical, r, seed, test_fraction)
        for name, items in by_backbone.items() if models else ():
            views, tasks = [], []
            for m in items:
                cfg, tr = m["config"], m["config"]["train"]
                view = dataset_view(stores[m["store_fingerprint"]], cfg["dataset"], split)
                X = np.asarray(feats[id(m)][view["image_id"].to_numpy()], np.float32)
                is_train = (view["split"] == "train").to_numpy()
                Xs = standardise(X, is_train)[0].astype(np.float32)
                y = view["label"].to_numpy(np.float32)
                views.append((m, view, Xs, is_train))
                tasks.append(HeadTask(Xs[is_train], y[is_train], int(tr["seed"]) + r))
            tr = items[0]["config"]["train"]
            fits = fit_heads(tasks, epochs=int(tr["epochs"]), batch_size=int(tr["batch_size"]),
                             learning_rate=float(tr["learning_rate"]), dropout=float(tr["dropout"]),
                             l2=float(tr["l2"]))
            for (m, view, Xs, is_train), fit in zip(views, fits):
                test = view[~is_train].assign(probability=fit.probabilities(Xs[~is_train]))
                pts = test.groupby("patient_id").agg(label=("label", "first"), probability=("probability", "mean"))
                key = {"split": r, "dataset": m["config"]["dataset"], "variant": m["config"]["variant"],
                       "backbone": name}
                rows.append({**key, "level": "image", "auc": _auc(test["label"], test["probability"])})
                rows.append({**key, "level": "patient", "auc": _auc(pts["label"], pts["probability"])})
        for m in {(m["config"]["dataset"], m["config"]["variant"]): m for m in head}.values() if tnm else ():
            view = dataset_view(stores[m["store_fingerprint"]], m["config"]["dataset"], split)
            pts = view[view["split"] == "test"].groupby("patient_id")["label"].first()
            rows.append({"split": r, "dataset": m["config"]["dataset"], "variant": m["config"]["variant"],
                         "backbone": TNM, "level": "patient", "auc": _auc(pts, stage_iv.loc[pts.index])})
    return pd.DataFrame(rows, columns=RESPLIT_COLUMNS)


def resplit_summary(resplits: pd.DataFrame, metrics: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """Per run: median and 2.5–97.5 % range of the resplit AUCs, where the run's own test AUC
    falls among them (percentile), and the share of resplits in which it beats TNM stage on the
    same test patients.

    Parameters
    ----------
    resplits : :func:`resplit_aucs`
    metrics : the runs' own test metrics (``evaluation.evaluate_runs``)
    level : ``patient`` or ``image``

    Returns
    -------
    DataFrame, one row per run: ``dataset, variant, backbone, splits, median_auc, auc_2_5, auc_97_5,
    run_auc, run_percentile, share_beating_tnm``.
    """
    part = resplits[resplits["level"] == level]
    models = part[part["backbone"] != TNM]
    tnm = resplits[resplits["backbone"] == TNM].set_index(["split", "dataset", "variant"])["auc"]
    own = metrics.set_index(["dataset", "variant", "backbone"])["patient_auc" if level == "patient" else "auc"]
    rows = []
    for (d, v, b), g in models.groupby(["dataset", "variant", "backbone"], sort=False):
        a = g["auc"].dropna()
        t = tnm.reindex(list(zip(g["split"], g["dataset"], g["variant"]))).to_numpy()
        run = own.get((d, v, b), np.nan)
        rows.append({"dataset": d, "variant": v, "backbone": b, "splits": len(a), "median_auc": a.median(),
                     "auc_2_5": a.quantile(0.025), "auc_97_5": a.quantile(0.975), "run_auc": run,
                     "run_percentile": 100 * float((a < run).mean()) if np.isfinite(run) else np.nan,
                     "share_beating_tnm": float(np.nanmean(g["auc"].to_numpy() > t)) if len(g) else np.nan})
    return pd.DataFrame(rows)


def averaged_backbones(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the backbones an average is taken over: the paper's four, as its Table 2 averages
    (EfficientNet-Lite0 is shown beside them, never inside); all model rows if the run has none of them."""
    models = frame[frame["backbone"] != TNM]
    four = models[models["backbone"].isin(PAPER_BACKBONES)]
    return four if len(four) else models


def first_place_counts(resplits: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """How often each dataset × variant ranks first (highest mean AUC over the paper's four backbones) per split."""
    part = averaged_backbones(resplits[resplits["level"] == level])
    cell = part.groupby(["split", "dataset", "variant"])["auc"].mean().reset_index()
    best = cell.loc[cell.groupby("split")["auc"].idxmax(), ["dataset", "variant"]]
    counts = best.value_counts().rename("first_places").reset_index()
    allcells = cell[["dataset", "variant"]].drop_duplicates()
    out = allcells.merge(counts, how="left", on=["dataset", "variant"]).fillna({"first_places": 0})
    out["first_places"] = out["first_places"].astype(int)
    out["share"] = out["first_places"] / cell["split"].nunique()
    return out.sort_values("first_places", ascending=False, kind="stable").reset_index(drop=True)


def cell_summary(resplits: pd.DataFrame, metrics: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """Per dataset × variant, the mean over the paper's four backbones per split (:func:`averaged_backbones`):
    median and 2.5–97.5 % range across splits, the run's own split's percentile among them, and the share
    of splits in which it beats TNM stage on the same test patients; EfficientNet-Lite0's median beside it."""
    part = resplits[resplits["level"] == level]
    cell = averaged_backbones(part).groupby(["dataset", "variant", "split"])["auc"].mean()
    lite0 = part[part["backbone"] == LITE0].groupby(["dataset", "variant"])["auc"].median()
    tnm = resplits[resplits["backbone"] == TNM].set_index(["dataset", "variant", "split"])["auc"]
    own = averaged_backbones(metrics).groupby(["dataset", "variant"])["patient_auc" if level == "patient" else "auc"].mean()
    rows = []
    for (d, v), a in cell.groupby(level=[0, 1], sort=False):
        run = own.get((d, v), np.nan)
        beats = a.to_numpy() > tnm.reindex(a.index).to_numpy()
        rows.append({"dataset": d, "variant": v, "splits": len(a), "median_auc": a.median(),
                     "auc_2_5": a.quantile(0.025), "auc_97_5": a.quantile(0.975), "run_auc": run,
                     "run_percentile": 100 * float((a < run).mean()) if np.isfinite(run) else np.nan,
                     "share_beating_tnm": float(beats.mean()), "tnm_median_auc": tnm.reindex(a.index).median(),
                     "lite0_median_auc": lite0.get((d, v), np.nan)})
    return pd.DataFrame(rows)
