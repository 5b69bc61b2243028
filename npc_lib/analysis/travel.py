"""Does it travel? What the "Does it travel?" chapter shows, read from a finished run's external validation
(:mod:`npc_lib.external_study`): the two centres side by side, internal against external AUC, calibration on
the external centre and what harmonisation recovers. Nothing is fitted here."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.analysis.external import PIXEL, PLANTED, TNM
from npc_lib.analysis.harmonisation import harmonisation_summary
from npc_lib.data.cache import open_image_store
from npc_lib.data.cohort import load_cohort
from npc_lib.layout import RunLayout, store_folder
from npc_lib.vocabulary import INTRA_PERITUMOUR, NODE_DATASETS

STAGES = ("I", "II", "III", "IV")
CNN_MEAN = "CNN mean (paper's four)"


@dataclass
class Travel:
    """What :func:`travel_study` returns (``available`` False: the run has no external validation)."""

    available: bool
    info: dict = field(default_factory=dict)
    centres: pd.DataFrame = field(default_factory=pd.DataFrame)    # one row per centre: scanner, protocol, case mix
    histograms: dict = field(default_factory=dict)                 # centre -> ROI pixel values (a sample), raw
    slices: dict = field(default_factory=dict)                     # centre -> one axial slice (raw pixels)
    crops: dict = field(default_factory=dict)                      # label -> one stored CMLN image
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)    # external_summary.csv
    external: pd.DataFrame = field(default_factory=pd.DataFrame)   # external.csv
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)  # the chosen models on the external centre
    harmonisation: pd.DataFrame = field(default_factory=pd.DataFrame)
    harmonisation_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    numbers: dict = field(default_factory=dict)


def _centre_row(name: str, report: dict) -> dict:
    m = report.get("measured", {})
    row = {"centre": name, "patients": report.get("patients"), "dm": report.get("dm"), "dm_rate": m.get("dm_rate"),
           "pixel_spacing_mm": m.get("pixel_spacing_mm"), "slice_mm": m.get("slice_mm"), "matrix": m.get("matrix"),
           "mean_stored_intensity": m.get("mean_stored_intensity"), "air_sd_stored": m.get("air_sd_stored")}
    row.update({f"stage_{s}": m.get("stage_shares", {}).get(s) for s in STAGES})
    return row


def _roi_pixels(cohort_dir: Path, patients: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw stored values inside the drawn ROI rectangles of a sample of patients, and one mid-neck slice."""
    cohort = load_cohort(cohort_dir, progress=False)
    rng = np.random.default_rng(seed)
    ids = sorted(cohort.series)
    pick = [ids[i] for i in sorted(rng.choice(len(ids), min(patients, len(ids)), replace=False))]
    values, example = [], None
    for pid in pick:
        pixels = cohort.load_series(pid).pixels
        rois = cohort.rois[cohort.rois["patient_id"] == pid]
        for r in rois.itertuples():
            values.append(pixels[r.slice_index, r.y0:r.y1, r.x0:r.x1].ravel())
        if example is None:
            node = rois[rois["region"] == "cmln"]
            example = pixels[int(node.iloc[0].slice_index) if len(node) else len(pixels) // 2]
    return np.concatenate(values).astype(np.float32), example


def _example_crops(layout: RunLayout, info: dict) -> dict:
    """The largest node ROI of each centre as the models see it: centre A; centre B as it comes; centre B as
    scored (the profile's harmonisation)."""
    out = {}
    ref = layout.read_cohort_ref()
    sources = {"Centre A": layout.image_store(ref["store"])}
    choice = layout.table("harmonisation", ".json")
    stores = json.loads(choice.read_text()).get("stores", {}) if choice.is_file() else {}
    cache = Path(info["cache"]) if info.get("cache") else layout.external_run(info.get("centre", "B")).cache
    if "evaluation:none" in stores:
        sources[f"Centre {info['centre']}, as it comes"] = store_folder(cache, stores["evaluation:none"])
    if info.get("store") and info.get("store") != stores.get("evaluation:none"):
        sources[f"Centre {info['centre']}, as scored"] = store_folder(cache, info["store"])
    for label, root in sources.items():
        try:
            store = open_image_store(root, verify=False)
        except Exception:  # a store removed since: the panel is left out
            continue
        idx = store.index[store.index["region"] == "cmln"]
        if idx.empty:
            continue
        area = (idx["x1"] - idx["x0"]) * (idx["y1"] - idx["y0"])
        out[label] = np.asarray(store.images(INTRA_PERITUMOUR)[int(idx.loc[area.idxmax(), "image_id"])])
    return out


def _chosen_calibration(layout: RunLayout, external: pd.DataFrame) -> pd.DataFrame:
    """External calibration of the models chosen on training data (``model_selection.csv``), if any."""
    path = layout.table("model_selection")
    pat = external[external["level"] == "patient"]
    if not path.is_file():
        return pd.DataFrame()
    chosen = pd.read_csv(path)
    chosen = chosen[chosen["selected"]][["dataset", "variant", "backbone"]]
    return chosen.merge(pat, on=["dataset", "variant", "backbone"], how="inner")


def travel_study(runs_dir: RunLayout | str | Path) -> Travel:
    """Read a run's external validation (``evaluation/external*.csv``, ``harmonisation.csv``, ``external.json``)
    and the two cohorts' generation reports into what the chapter shows.

    Parameters
    ----------
    runs_dir : the run folder (or its layout)

    Returns
    -------
    :class:`Travel`; ``available`` is False when the run has no external validation.
    """
    layout = RunLayout.of(runs_dir)
    info_path = layout.table("external", ".json")
    if not info_path.is_file() or not layout.table("external").is_file():
        return Travel(False)
    info = json.loads(info_path.read_text())
    ext_dir = Path(info["cohort"])
    own_dir = Path(layout.read_cohort_ref()["cohort"])
    reports = {c: json.loads((d / "generation_report.json").read_text())
               for c, d in (("A", own_dir), (info["centre"], ext_dir)) if (d / "generation_report.json").is_file()}
    centres = pd.DataFrame([_centre_row(c, r) for c, r in reports.items()])
    hist, slices = {}, {}
    for c, d in (("A", own_dir), (info["centre"], ext_dir)):
        hist[c], slices[c] = _roi_pixels(d)
    external = pd.read_csv(layout.table("external"))
    summary_path = layout.table("external_summary")
    summary = pd.read_csv(summary_path) if summary_path.is_file() else pd.DataFrame()
    harm = pd.read_csv(layout.table("harmonisation")) if layout.table("harmonisation").is_file() else pd.DataFrame()
    harm_summary = harmonisation_summary(harm) if len(harm) else pd.DataFrame()
    travel = Travel(True, info, centres, hist, slices, _example_crops(layout, info), summary, external,
                    _chosen_calibration(layout, external), harm, harm_summary)
    travel.numbers = travel_numbers(travel)
    return travel


def _mean(frame: pd.DataFrame, what: str, column: str) -> float:
    x = frame.loc[frame["what"] == what, column]
    return float(x.mean()) if len(x) else np.nan


def travel_numbers(t: Travel) -> dict:
    """Every number the chapter cites: ``name -> (value, decimals)`` or a ready string."""
    info, s = t.info, t.summary
    c = t.centres.set_index("centre") if len(t.centres) else pd.DataFrame()
    b = info.get("centre", "B")
    out = {"ext_centre": b, "ext_patients": str(info.get("patients", "n/a")),
           "ext_harmonisation": info.get("harmonisation", "none"),
           "ext_resample": "resampled to the training spacing" if info.get("resample") else "at their own spacing",
           "ext_warnings": len(info.get("warnings", []))}
    if len(c):
        for centre, tag in (("A", "a"), (b, "b")):
            if centre in c.index:
                r = c.loc[centre]
                out.update({f"ext_{tag}_dm_rate": f"{r['dm_rate']:.0%}", f"ext_{tag}_spacing": (r["pixel_spacing_mm"], 2),
                            f"ext_{tag}_slice": (r["slice_mm"], 0), f"ext_{tag}_stage_iv": f"{r['stage_IV']:.0%}",
                            f"ext_{tag}_stage_i_ii": f"{(r['stage_I'] or 0) + (r['stage_II'] or 0):.0%}",
                            f"ext_{tag}_intensity": (r["mean_stored_intensity"], 0), f"ext_{tag}_dm": str(r["dm"])})
    if len(s):
        strong = s[s["dataset"].isin(NODE_DATASETS)]
        out.update({
            "ext_planted_change": (_mean(s, PLANTED, "change"), 3),
            "ext_planted_abs_change": (float(s.loc[s["what"] == PLANTED, "change"].abs().mean()), 3),
            "ext_cnn_change": (_mean(s, CNN_MEAN, "change"), 3),
            "ext_cnn_excess": (_mean(s, CNN_MEAN, "excess_change"), 3),
            "ext_cnn_change_strong": (_mean(strong, CNN_MEAN, "change"), 3),
            "ext_cnn_excess_strong": (_mean(strong, CNN_MEAN, "excess_change"), 3),
            "ext_pixel_change": (_mean(s, PIXEL, "change"), 3),
            "ext_tnm_change": (_mean(s, TNM, "change"), 3),
            "ext_cnn_below": str(int(((s["what"] == CNN_MEAN) & (s["change_high"] < 0)).sum())),
            "ext_cnn_excess_below": str(int(((s["what"] == CNN_MEAN) & (s["excess_high"] < 0)).sum())),
            "ext_planted_outside": str(int(((s["what"] == PLANTED) & ((s["change_low"] > 0) | (s["change_high"] < 0))).sum())),
            "ext_cells": str(int((s["what"] == CNN_MEAN).sum())),
        })
    h = t.harmonisation_summary
    if len(h):
        out.update(harmonisation_numbers(h, t.harmonisation, info))
    cal = t.calibration
    if len(cal):
        out.update({"ext_cal_intercept": (cal["calibration_intercept_external"].mean(), 2),
                    "ext_cal_slope": (cal["calibration_slope_external"].median(), 2),
                    "ext_sens": (cal["sensitivity_external"].mean(), 2),
                    "ext_spec": (cal["specificity_external"].mean(), 2)})
    return out


def harmonisation_numbers(h: pd.DataFrame, table: pd.DataFrame, info: dict) -> dict:
    """What the chapter quotes of the harmonisation ablation: the choice (made on the tuning draw) and each
    setting's mean gain over none with its bootstrap CI, on the tuning and the evaluation draw."""
    def label(intensity, resample):
        return intensity + (" with resampling" if resample else "")

    def gain(draw, intensity, resample):
        r = h[(h["draw"] == draw) & (h["intensity"] == intensity) & (h["resample"] == resample)]
        if not len(r) or pd.isna(r["gain_vs_none"].iloc[0]):
            return "n/a"
        r = r.iloc[0]
        return f"{r['gain_vs_none']:+.3f} ({r['gain_low']:+.3f} to {r['gain_high']:+.3f})"

    chosen = (info.get("harmonisation", "none"), bool(info.get("resample")))
    tuning = h[h["draw"] == "tuning"]
    fav = tuning.loc[tuning["auc_external"].idxmax()] if len(tuning) else None
    out = {"harm_chosen": label(*chosen), "harm_how": info.get("how_chosen", "the profile's setting"),
           "harm_backbones": ", ".join(sorted(table.loc[table["dataset"] != "all", "backbone"].unique())),
           "harm_tuning_patients": str(info.get("tuning_patients") or "n/a"),
           "harm_favoured_tuning": label(fav["intensity"], bool(fav["resample"])) if fav is not None else "n/a"}
    for draw in ("tuning", "evaluation"):
        base = h[(h["draw"] == draw) & (h["intensity"] == "none") & (~h["resample"].astype(bool))]
        out[f"harm_{draw}_none_auc"] = (base["auc_external"].iloc[0] if len(base) else np.nan, 3)
        out[f"harm_{draw}_chosen_gain"] = gain(draw, *chosen)
        out[f"harm_{draw}_resample_gain"] = gain(draw, "none", True)
        for intensity in ("zscore", "histogram"):
            out[f"harm_{draw}_{intensity}_gain"] = gain(draw, intensity, False)
    return out
