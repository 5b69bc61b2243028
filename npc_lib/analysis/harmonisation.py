"""The harmonisation ablation: what each choice of intensity harmonisation and spacing resampling does to the
external AUC and calibration of the best backbone per dataset (chosen on training data only)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.external import auc_with_ci
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, calibration, patient_scores

COLUMNS = ["intensity", "resample", "dataset", "variant", "backbone", "level", "auc_internal", "auc_external",
           "auc_external_low", "auc_external_high", "change", "change_low", "change_high", "excess_change", "excess_low",
           "excess_high", "change_vs_none", "calibration_intercept_external",
           "calibration_slope_external", "brier_external", "profile_choice"]
NONE = ("none", False)


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


def harmonisation_table(internal: dict, scored: dict, chosen: tuple[str, bool], planted: tuple[dict, dict] | None = None,
                        n_boot: int = 1000) -> pd.DataFrame:
    """One row per condition × model × level.

    Parameters
    ----------
    internal : (dataset, variant, backbone) -> the run's predictions (its test rows give ``auc_internal``)
    scored : (intensity, resample) -> {(dataset, variant, backbone) -> external predictions}
    chosen : the profile's (intensity, resample), marked ``profile_choice``
    planted : the planted-risk reference's (internal, external) pseudo-runs, for the patient-level change's
        excess over it (:func:`npc_lib.analysis.external.external_summary`, bootstrap CIs)
    """
    from npc_lib.analysis.external import external_summary
    rows = []
    changes = {}
    for cond, preds in scored.items():
        both_int = {**internal, **(planted[0] if planted else {})}
        both_ext = {**preds, **({k: f for k, f in planted[1].items() if k[:2] in {p[:2] for p in preds}}
                                if planted else {})}
        summ = external_summary(both_int, both_ext, n_boot=n_boot, groups={})
        for r in summ.itertuples():
            changes[(cond, r.dataset, r.variant, r.what)] = {c: getattr(r, c) for c in (
                "change", "change_low", "change_high", "excess_change", "excess_low", "excess_high")}
    for cond, preds in scored.items():
        for key, ext in sorted(preds.items()):
            own = internal.get(key)
            own = own[own["split"] == "test"] if own is not None else None
            for level in ("image", "patient"):
                row = {"intensity": cond[0], "resample": bool(cond[1]), "dataset": key[0], "variant": key[1],
                       "backbone": key[2], "level": level, "profile_choice": tuple(cond) == tuple(chosen)}
                if own is not None:
                    row["auc_internal"] = auc_with_ci(own, level)[0]
                row["auc_external"], row["auc_external_low"], row["auc_external_high"] = auc_with_ci(ext, level)
                if level == "patient":
                    row.update(changes.get((cond, *key), {}))
                    try:
                        pts = patient_scores(ext)
                        cal = calibration(pts["label"], pts["probability"].clip(0, 1), bins=5)
                        row.update(calibration_intercept_external=cal["intercept"],
                                   calibration_slope_external=cal["slope"], brier_external=cal["brier"])
                    except (MetricError, ValueError):
                        pass
                rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    base = table[(table["intensity"] == NONE[0]) & (~table["resample"])].set_index(
        ["dataset", "variant", "backbone", "level"])["auc_external"]
    keys = pd.MultiIndex.from_frame(table[["dataset", "variant", "backbone", "level"]])
    table["change_vs_none"] = table["auc_external"].to_numpy() - base.reindex(keys).to_numpy()
    return table


def harmonisation_summary(table: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """Per condition: mean external AUC over the models, mean change against no harmonisation, mean absolute
    calibration intercept and mean Brier score; ``favoured`` marks the highest mean external AUC (ties: the
    simpler choice, i.e. the earlier row)."""
    t = table[table["level"] == level]
    out = (t.groupby(["intensity", "resample"], sort=False)
           .agg(auc_external=("auc_external", "mean"), change_vs_none=("change_vs_none", "mean"),
                wins=("change_vs_none", lambda x: int((x > 0).sum())), models=("auc_external", "size"),
                abs_intercept=("calibration_intercept_external", lambda x: float(np.nanmean(np.abs(x))) if x.notna().any() else np.nan),
                brier=("brier_external", "mean"), profile_choice=("profile_choice", "first"))
           .reset_index())
    out["favoured"] = False
    if len(out):
        out.loc[out["auc_external"].idxmax(), "favoured"] = True
    return out
