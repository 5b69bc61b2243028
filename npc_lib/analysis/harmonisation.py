"""The harmonisation ablation: what each choice of intensity map and spacing resampling does to the external AUC and
calibration of the best backbone per dataset (chosen on training data only), on two draws of the other centre.

The choice the main job scores its external validation with is made on the *tuning* draw (other patients of the
same centre); the *evaluation* draw's rows are shown beside it and are exploratory: the evaluation patients never
enter the choice. Each setting's gain over no harmonisation has a paired percentile-bootstrap 95 % CI (the draw's
patients resampled, stratified by outcome, the same resamples for every setting and model).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from npc_lib.analysis.external import auc_with_ci
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, calibration, patient_scores, resampled_aucs

COLUMNS = ["draw", "intensity", "resample", "dataset", "variant", "backbone", "level", "auc_internal", "auc_external",
           "auc_external_low", "auc_external_high", "gain_vs_none", "gain_low", "gain_high",
           "calibration_intercept_external", "calibration_slope_external", "brier_external", "chosen"]
NONE = ("none", False)
DRAWS = ("tuning", "evaluation")


def ablation_backbones(metas: list[dict], oof: dict, candidates) -> dict[str, str]:
    """dataset -> the backbone among ``candidates`` with the highest mean out-of-fold training patient AUC
    over the dataset's variants (the test set never enters the choice)."""
    rows = []
    for meta in metas:
        cfg = meta["config"]
        key = (cfg["dataset"], cfg["variant"], cfg["backbone"])
        if cfg["backbone"] not in candidates or key not in oof:
            continue
        pts = patient_scores(oof[key])
        try:
            rows.append({"dataset": key[0], "backbone": key[2], "auc": auc_ci_delong(pts["label"], pts["probability"]).auc})
        except MetricError:
            continue
    if not rows:  # no out-of-fold scores (finetune mode): the first candidate the run trained
        trained = {m["config"]["dataset"]: [] for m in metas}
        for m in metas:
            trained[m["config"]["dataset"]].append(m["config"]["backbone"])
        return {d: next((c for c in candidates if c in bs), bs[0]) for d, bs in trained.items()}
    mean = pd.DataFrame(rows).groupby(["dataset", "backbone"])["auc"].mean().reset_index()
    return {d: g.sort_values(["auc", "backbone"], ascending=[False, True]).iloc[0]["backbone"]
            for d, g in mean.groupby("dataset")}


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return np.nan
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def gain_draws(scored: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of each condition's patient-level AUC gain over no harmonisation, per model and for
    the mean over the models.

    Parameters
    ----------
    scored : (intensity, resample) -> {(dataset, variant, backbone) -> one draw's predictions}; must hold
        ``NONE``
    n_boot, seed : resamples of the draw's patients (stratified by outcome)

    Returns
    -------
    dict: (condition, model key or ``"mean"``) -> (gain, 2.5 % and 97.5 % percentiles).
    """
    if NONE not in scored:
        return {}
    pts = {cond: {k: patient_scores(f.dropna(subset=["probability"])).set_index("patient_id")
                  for k, f in preds.items()} for cond, preds in scored.items()}
    ids = sorted(set().union(*(set(p.index) for p in pts[NONE].values())))
    labels = pd.concat([p["label"] for p in pts[NONE].values()]).groupby(level=0).first().reindex(ids).to_numpy(int)
    arr = {cond: {k: p["probability"].reindex(ids).to_numpy(float) for k, p in preds.items()}
           for cond, preds in pts.items()}
    rng = np.random.default_rng(seed)
    samples = [np.concatenate([rng.choice(np.flatnonzero(labels == c), (labels == c).sum(), replace=True)
                               for c in (0, 1)]) for _ in range(n_boot)]
    out = {}
    base = arr[NONE]
    for cond, models in arr.items():
        if cond == NONE:
            continue
        keys = [k for k in models if k in base]
        point = {k: _rank_auc(labels, models[k]) - _rank_auc(labels, base[k]) for k in keys}
        draws = np.array(samples)
        boots = np.stack([resampled_aucs(labels, models[k], draws) - resampled_aucs(labels, base[k], draws)
                          for k in keys], axis=1) if keys else np.zeros((n_boot, 0))
        for j, k in enumerate(keys):
            out[(cond, k)] = (point[k], *np.nanpercentile(boots[:, j], [2.5, 97.5]))
        out[(cond, "mean")] = (float(np.nanmean(list(point.values()))),
                               *np.nanpercentile(np.nanmean(boots, axis=1), [2.5, 97.5]))
    return out


def harmonisation_table(internal: dict, scored: dict, chosen: tuple[str, bool], n_boot: int = 1000) -> pd.DataFrame:
    """One row per draw × condition × model × level.

    Parameters
    ----------
    internal : (dataset, variant, backbone) -> the run's predictions (its test rows give ``auc_internal``)
    scored : draw -> {(intensity, resample) -> {(dataset, variant, backbone) -> that draw's predictions}}
    chosen : the (intensity, resample) the external validation uses, marked ``chosen``
    n_boot : bootstrap resamples of each gain's CI

    Returns
    -------
    DataFrame with ``COLUMNS``.
    """
    rows = []
    for draw, conditions in scored.items():
        gains = gain_draws(conditions, n_boot=n_boot)
        for cond, preds in conditions.items():
            for key, ext in sorted(preds.items()):
                own = internal.get(key)
                own = own[own["split"] == "test"] if own is not None else None
                for level in ("image", "patient"):
                    row = {"draw": draw, "intensity": cond[0], "resample": bool(cond[1]), "dataset": key[0],
                           "variant": key[1], "backbone": key[2], "level": level, "chosen": tuple(cond) == tuple(chosen)}
                    if own is not None:
                        row["auc_internal"] = auc_with_ci(own, level)[0]
                    row["auc_external"], row["auc_external_low"], row["auc_external_high"] = auc_with_ci(ext, level)
                    if level == "patient":
                        g = gains.get((cond, key))
                        if g is not None:
                            row.update(gain_vs_none=g[0], gain_low=g[1], gain_high=g[2])
                        elif cond == NONE:
                            row["gain_vs_none"] = 0.0
                        try:
                            pts = patient_scores(ext)
                            cal = calibration(pts["label"], pts["probability"].clip(0, 1), bins=5)
                            row.update(calibration_intercept_external=cal["intercept"],
                                       calibration_slope_external=cal["slope"], brier_external=cal["brier"])
                        except (MetricError, ValueError):
                            pass
                    rows.append(row)
        for cond in conditions:  # the mean over the draw's models, as one more row per condition
            g = gains.get((cond, "mean"), (0.0, np.nan, np.nan) if cond == NONE else None)
            if g is not None:
                rows.append({"draw": draw, "intensity": cond[0], "resample": bool(cond[1]), "dataset": "all",
                             "variant": "", "backbone": "mean over the models", "level": "patient",
                             "gain_vs_none": g[0], "gain_low": g[1], "gain_high": g[2],
                             "chosen": tuple(cond) == tuple(chosen)})
    return pd.DataFrame(rows, columns=COLUMNS)


def choose_harmonisation(table: pd.DataFrame, draw: str = "tuning") -> tuple[str, bool]:
    """The condition with the highest mean patient-level external AUC on ``draw`` (ties: the simpler one, i.e.
    the earlier in the ablation's order: no resampling before resampling, none before zscore before histogram)."""
    t = table[(table["draw"] == draw) & (table["level"] == "patient") & (table["dataset"] != "all")]
    mean = t.groupby(["intensity", "resample"], sort=False)["auc_external"].mean()
    if mean.empty or mean.isna().all():
        return NONE
    best = mean.idxmax()
    return str(best[0]), bool(best[1])


def harmonisation_summary(table: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """Per draw × condition: mean external AUC over the models, mean gain over no harmonisation with its
    bootstrap CI, models improved, mean absolute calibration intercept and mean Brier score; ``chosen`` marks
    the condition the external validation used (chosen on the tuning draw)."""
    t = table[(table["level"] == level) & (table["dataset"] != "all")]
    means = table[table["dataset"] == "all"].set_index(["draw", "intensity", "resample"])
    out = (t.groupby(["draw", "intensity", "resample"], sort=False)
           .agg(auc_external=("auc_external", "mean"), wins=("gain_vs_none", lambda x: int((x > 0).sum())),
                models=("auc_external", "size"),
                abs_intercept=("calibration_intercept_external",
                               lambda x: float(np.nanmean(np.abs(x))) if x.notna().any() else np.nan),
                brier=("brier_external", "mean"), chosen=("chosen", "first"))
           .reset_index())
    keys = pd.MultiIndex.from_frame(out[["draw", "intensity", "resample"]])
    for col in ("gain_vs_none", "gain_low", "gain_high"):
        out[col] = means[col].reindex(keys).to_numpy() if len(means) else np.nan
    return out
