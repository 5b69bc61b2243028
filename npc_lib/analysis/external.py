"""External validation: a run's models, trained on one centre, scored on another centre's patients.

For every model: the internal test AUC (the run's own test patients) beside the external AUC (every
external patient), both with 95 % DeLong intervals (image level clustered by patient), calibration on the
external patients (intercept in the large, slope, Brier score) and the threshold chosen on the training
patients' out-of-fold scores applied unchanged: its sensitivity and specificity there. The planted-risk
reference (a synthetic external cohort), the pixel reference model fitted on the training centre's
training images and TNM stage are scored on the same external patients, as the ceiling-like references
and the clinical baseline.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.metrics import (MetricError, auc_ci_delong, calibration, patient_scores, resampled_aucs,
                                     threshold_metrics)
from npc_lib.analysis.references import pixel_model, planted_image_scores, store_features
from npc_lib.data.rois import dataset_mask

COLUMNS = ["dataset", "variant", "backbone", "level", "auc_internal", "auc_internal_low", "auc_internal_high",
           "auc_external", "auc_external_low", "auc_external_high", "calibration_intercept_external",
           "calibration_slope_external", "brier_external", "threshold", "sensitivity_external",
           "specificity_external", "external_patients", "external_events", "note"]
PIXEL, PLANTED, TNM = "pixel reference", "planted risk", "TNM stage"
#: scores that are not fitted probabilities: no calibration is reported for them
NOT_PROBABILITIES = {PLANTED: "the planted log-odds without the cohort's intercept, not a fitted probability",
                     TNM: "stage IV against I–III, a rank and not a probability"}


def auc_with_ci(frame: pd.DataFrame, level: str) -> tuple[float, float, float]:
    try:
        if level == "patient":
            pts = patient_scores(frame)
            ci = auc_ci_delong(pts["label"], pts["probability"])
        else:
            ci = auc_ci_delong(frame["label"], frame["probability"], groups=frame["patient_id"].to_numpy())
        return ci.auc, ci.low, ci.high
    except MetricError:
        return np.nan, np.nan, np.nan


def _row(key, level, internal: pd.DataFrame | None, external: pd.DataFrame, threshold: float | None) -> dict:
    d, v, b = key
    row = {"dataset": d, "variant": v, "backbone": b, "level": level, "note": ""}
    if internal is not None:
        row.update(zip(("auc_internal", "auc_internal_low", "auc_internal_high"), auc_with_ci(internal, level)))
    row.update(zip(("auc_external", "auc_external_low", "auc_external_high"), auc_with_ci(external, level)))
    pts = patient_scores(external)
    row.update(external_patients=len(pts), external_events=int(pts["label"].sum()))
    if level == "patient" and b in NOT_PROBABILITIES:
        row["note"] = f"no calibration: {NOT_PROBABILITIES[b]}"
    elif level == "patient":
        try:
            cal = calibration(pts["label"], pts["probability"].clip(0, 1), bins=5)
            row.update(calibration_intercept_external=cal["intercept"], calibration_slope_external=cal["slope"],
                       brier_external=cal["brier"])
        except (MetricError, ValueError) as exc:
            row["note"] = f"calibration: {exc}"
        if threshold is not None and np.isfinite(threshold):
            m = threshold_metrics(pts["label"], pts["probability"], threshold)
            row.update(threshold=threshold, sensitivity_external=m["sensitivity"], specificity_external=m["specificity"])
    return row


def external_table(internal: dict, external: dict, thresholds: dict) -> pd.DataFrame:
    """One row per model (and reference) × level: internal and external AUCs, calibration on the external
    patients and the training threshold's sensitivity and specificity there.

    Parameters
    ----------
    internal : (dataset, variant, backbone) -> the run's predictions (``split`` test rows are used)
    external : the same keys -> predictions on the external cohort
    thresholds : the same keys -> the patient-level threshold chosen on training data (or absent)

    Returns
    -------
    DataFrame with ``COLUMNS``.
    """
    rows = []
    for key, ext in external.items():
        own = internal.get(key)
        own = own[own["split"] == "test"] if own is not None else None
        for level in ("image", "patient"):
            rows.append(_row(key, level, own, ext.dropna(subset=["probability"]), thresholds.get(key)))
    return pd.DataFrame(rows, columns=COLUMNS)


def external_pixel_reference(train_store, split: pd.Series, ext_store, geometry, train_cache, ext_cache,
                             cells: set) -> tuple[dict, dict]:
    """The pixel reference model fitted on the training centre's training images of each dataset × variant,
    applied to its own test images (internal) and to every external image (external)."""
    fa = store_features(train_store, geometry, train_cache)
    fb = store_features(ext_store, geometry, ext_cache)
    internal, external = {}, {}
    for d, v in sorted(cells):
        a = train_store.index.loc[dataset_mask(train_store.index, d)].assign(split=lambda x: x["patient_id"].map(split))
        b = ext_store.index.loc[dataset_mask(ext_store.index, d)].assign(split="test")
        train = (a["split"] == "train").to_numpy()
        if len(np.unique(a["label"].to_numpy()[train])) < 2 or b.empty:
            continue
        model = pixel_model()
        model.fit(fa[v][a["image_id"].to_numpy()][train], a["label"].to_numpy()[train])
        cols = ["patient_id", "image_id", "label", "split"]
        internal[(d, v, PIXEL)] = a[cols].assign(probability=model.predict_proba(fa[v][a["image_id"].to_numpy()])[:, 1])
        external[(d, v, PIXEL)] = b[cols].assign(probability=model.predict_proba(fb[v][b["image_id"].to_numpy()])[:, 1])
    return internal, external


def external_references(ext_store, ext_dir, clinical: pd.DataFrame, cells: set) -> dict:
    """The planted-risk reference (a synthetic external cohort with ``truth_rois.csv``) and TNM stage (stage IV
    against I–III, one score per patient) on the external patients of each dataset × variant."""
    everyone = pd.Series("test", index=ext_store.index["patient_id"].unique())
    out = {}
    planted = planted_image_scores(ext_store, everyone, ext_dir, datasets=sorted({d for d, _ in cells}),
                                   variants=sorted({v for _, v in cells})) or {}
    for (d, v), frame in planted.items():
        out[(d, v, PLANTED)] = frame
    out.update(tnm_frames(ext_store, clinical, cells, everyone))
    return out


def tnm_frames(store, clinical: pd.DataFrame, cells: set, split: pd.Series) -> dict:
    """TNM stage (IV against I–III) as a one-row-per-patient pseudo-run for each dataset × variant: the
    patients with images of the dataset, their label, their ``split`` and the stage as the score."""
    stage_iv = clinical.set_index("patient_id")["overall_stage"].eq("IV").astype(float)
    out = {}
    for d, v in sorted(cells):
        pts = store.index.loc[dataset_mask(store.index, d)].groupby("patient_id")["label"].first().reset_index()
        out[(d, v, TNM)] = pts.assign(image_id=np.arange(len(pts)), split=pts["patient_id"].map(split).to_numpy(),
                                      probability=pts["patient_id"].map(stage_iv).to_numpy())
    return out


SUMMARY_COLUMNS = ["dataset", "variant", "what", "auc_internal", "auc_external", "change", "change_low", "change_high",
                   "excess_change", "excess_low", "excess_high", "internal_patients", "external_patients"]


def _fast_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann–Whitney AUC (ties count a half); NaN with one class."""
    from scipy.stats import rankdata
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return np.nan
    return float((rankdata(s)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _patients(frame: pd.DataFrame) -> pd.DataFrame:
    return patient_scores(frame.dropna(subset=["probability"]))[["patient_id", "label", "probability"]]


def _aligned(frame: pd.DataFrame, ids: list) -> np.ndarray:
    """A model's patient scores in the order of ``ids`` (NaN where it scored no image of the patient)."""
    return frame.set_index("patient_id")["probability"].reindex(ids).to_numpy(float)


def _labels(frames: list, ids: list) -> np.ndarray:
    return pd.concat(frames).drop_duplicates("patient_id").set_index("patient_id")["label"].reindex(ids).to_numpy(int)


def _auc_at(y: np.ndarray, s: np.ndarray) -> float:
    keep = np.isfinite(s)
    return _fast_auc(y[keep], s[keep])


def _stratified_draw(rng, y: np.ndarray) -> np.ndarray:
    """Positions of a bootstrap resample of the patients, stratified by outcome."""
    return np.concatenate([rng.choice(np.flatnonzero(y == c), (y == c).sum(), replace=True) for c in (0, 1)])


def external_summary(internal: dict, external: dict, n_boot: int = 1000, seed: int = 0,
                     groups: dict | None = None) -> pd.DataFrame:
    """Patient-level AUC change from the training centre's test patients to the external patients, per
    dataset × variant and group of models, with percentile-bootstrap 95 % CIs (both patient sets resampled
    independently, stratified by outcome, the same resamples for every model of the cell).

    ``groups`` maps a group name to the backbones averaged in it (default: the paper's four backbones as
    ``CNN mean (paper's four)``, each other backbone and reference on its own). ``excess_change`` is a
    group's change minus the planted-risk reference's change on the same resamples: a rough adjustment for
    case mix and sampling as the planted score feels them. A model that reads other features, or reads them
    less well, feels a change of case mix differently, so the excess mixes the scanner's effect with that
    difference; it does not isolate the scanner's.
    """
    from npc_lib.vocabulary import PAPER_BACKBONES
    groups = {"CNN mean (paper's four)": PAPER_BACKBONES} if groups is None else groups
    rng = np.random.default_rng(seed)
    rows = []
    for d, v in sorted({(d, v) for d, v, _ in external}):
        cell = {b: (_patients(internal[(d, v, b)].query("split == 'test'")), _patients(external[(d, v, b)]))
                for dd, vv, b in external if (dd, vv) == (d, v) and (d, v, b) in internal}
        if not cell:
            continue
        named = {name: [b for b in members if b in cell] for name, members in groups.items()}
        named = {k: m for k, m in named.items() if m}
        grouped = {b for m in named.values() for b in m}
        named.update({b: [b] for b in cell if b not in grouped})
        ids_int = sorted(set().union(*(set(p[0]["patient_id"]) for p in cell.values())))
        ids_ext = sorted(set().union(*(set(p[1]["patient_id"]) for p in cell.values())))
        arr = {b: (_aligned(a, ids_int), _aligned(e, ids_ext)) for b, (a, e) in cell.items()}
        lab_int = _labels([p[0] for p in cell.values()], ids_int)
        lab_ext = _labels([p[1] for p in cell.values()], ids_ext)
        point = {b: (_auc_at(lab_int, a), _auc_at(lab_ext, e)) for b, (a, e) in arr.items()}
        draws = [(_stratified_draw(rng, lab_int), _stratified_draw(rng, lab_ext)) for _ in range(n_boot)]
        di, de = np.array([d for d, _ in draws]), np.array([d for _, d in draws])
        boots = {b: resampled_aucs(lab_ext, e, de) - resampled_aucs(lab_int, a, di) for b, (a, e) in arr.items()}
        planted = boots.get(PLANTED)
        for name, members in named.items():
            auc_int = float(np.nanmean([point[b][0] for b in members]))
            auc_ext = float(np.nanmean([point[b][1] for b in members]))
            draws = np.nanmean(np.stack([boots[b] for b in members]), axis=0)
            row = {"dataset": d, "variant": v, "what": name, "auc_internal": auc_int, "auc_external": auc_ext,
                   "change": auc_ext - auc_int, "change_low": np.nanpercentile(draws, 2.5),
                   "change_high": np.nanpercentile(draws, 97.5),
                   "internal_patients": len(ids_int), "external_patients": len(ids_ext)}
            if planted is not None and name != PLANTED:
                planted_change = point[PLANTED][1] - point[PLANTED][0]
                excess = draws - planted
                row.update(excess_change=row["change"] - planted_change, excess_low=np.nanpercentile(excess, 2.5),
                           excess_high=np.nanpercentile(excess, 97.5))
            rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
