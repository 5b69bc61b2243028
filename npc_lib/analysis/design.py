"""The synthetic design in plain sight: what the generator plants, and the paper's findings beside it.

On the synthetic cohort some of the paper's findings are expected by construction: the generator
gives the nodal features larger weights than the primary's, paints the margin features only in the
3 mm band outside the drawn rectangle, and draws T and N from the published Table 1. So "the nodes
beat the primary", "the rim helps" and "Table 1 matches" are what a working pipeline must find, not
discoveries. :func:`planted_design` tabulates the generator's risk model from the cohort's
``generation_report.json`` (never retyped); :func:`design_findings` sets each finding's planted part
beside this run's value with a 95 % patient-bootstrap interval.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from npc_lib.analysis.metrics import patient_scores
from npc_lib.analysis.published import published_table1
from npc_lib.vocabulary import INTRA_PERITUMOUR, INTRATUMOUR, LITE0, PAPER_BACKBONES, VARIANTS, variant_column

FINDING_COLUMNS = ["key", "finding", "contrast", "built_into_generator", "planted_reference", "planted_low",
                   "planted_high", "paper_backbones", "paper_low", "paper_high", "lite0", "lite0_low",
                   "lite0_high", "p_value", "patients", "dm_patients"]


def read_generation_report(cohort_dir: str | Path) -> dict | None:
    """The cohort's ``generation_report.json`` (synthetic cohorts), or None."""
    path = Path(cohort_dir) / "generation_report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def planted_design(report: dict | None) -> pd.DataFrame:
    """The generator's planted risk model, one row per component: its weight on the DM log-odds, the
    distribution of the feature it multiplies, the region whose images show it and where (inside the
    drawn rectangle, in the 3 mm rim outside it, or in no image). Empty for a cohort without a report."""
    model = (report or {}).get("risk_model", {})
    rows = []
    for stage, key in (("T", "t_weights"), ("N", "n_weights")):
        if key in model:
            weights = ", ".join(f"{stage}{i + (stage == 'T')} {w:g}" for i, w in enumerate(model[key]))
            rows.append({"component": f"{stage} stage", "weight": weights, "feature": "stage category",
                         "region": "NPC" if stage == "T" else "CMLN",
                         "shown": "size of the primary" if stage == "T" else "number and size of the nodes"})
    for name, spec in model.get("features", {}).items():
        rows.append({"component": spec.get("title", name), "weight": f"{spec['weight']:g}",
                     "feature": spec.get("distribution", ""), "region": spec.get("region", ""),
                     "shown": spec.get("shown", "")})
    return pd.DataFrame(rows, columns=["component", "weight", "feature", "region", "shown"])


def rim_audit_numbers(report: dict | None) -> dict:
    """The generator's rim audit in numbers for the book: planted rim pixels inside the drawn and the
    grown rectangles (shares, both regions pooled) and the rendered-twice intensity check."""
    keys = ("rim_inside_drawn", "rim_inside_grown", "rim_leak_patients", "rim_leak_max")
    rim = (report or {}).get("peritumoural_rim", {})
    parts = [v for v in rim.values() if isinstance(v, dict) and v.get("pixels")]
    if not parts:
        return dict.fromkeys(keys, "n/a (not a synthetic cohort)")
    total = sum(p["pixels"] for p in parts)
    leak = report.get("rim_intensity_leak", {})
    return {"rim_inside_drawn": f"{sum(p['inside_drawn'] for p in parts) / total:.1%}",
            "rim_inside_grown": f"{sum(p['inside_grown'] for p in parts) / total:.1%}",
            "rim_leak_patients": str(leak.get("patients", "n/a")),
            "rim_leak_max": f"{leak['max_abs_difference_sd']:.2f}" if "max_abs_difference_sd" in leak else "n/a"}


def time_model_numbers(report: dict | None) -> dict:
    """The planted time model in numbers for the clock chapter (n/a for a cohort without one)."""
    keys = ("time_follow_up", "time_accrual", "time_censored", "time_dm", "time_dm_observed", "time_spearman",
            "time_within_12", "time_after_60")
    t = (report or {}).get("time_model")
    if not t:
        return dict.fromkeys(keys, "n/a")
    if "follow_up_months" not in t:  # a cohort of an earlier generator
        return dict.fromkeys(keys, "n/a")
    return {"time_follow_up": "–".join(f"{v:g}" for v in t["follow_up_months"]),
            "time_accrual": f"{t['accrual_months'][1] - t['accrual_months'][0]:g}",
            "time_censored": t["dm_censored_before_event"], "time_dm": t["dm_patients"],
            "time_dm_observed": t["dm_events_observed"],
            "time_spearman": f"{t['spearman_timing_score_vs_planted_risk_dm']:.2f}",
            "time_within_12": f"{t['share_within_12_months']:.0%}", "time_after_60": f"{t['share_after_60_months']:.0%}"}


def cohort_design(cohort_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The planted design table, the rim-audit and the time-model numbers of a cohort (empty and n/a for a real one).

    Parameters
    ----------
    cohort_dir : the cohort folder (its ``generation_report.json``, if any)

    Returns
    -------
    ``(table, numbers)``: :func:`planted_design` and the numbers the book glues.
    """
    report = read_generation_report(cohort_dir)
    return planted_design(report), {**rim_audit_numbers(report), **time_model_numbers(report),
                                     "cohort_kind": "synthetic (generated by npc_lib.synth, with a planted truth)"
                                     if report else "your own cohort (no planted truth)"}


def _patient_matrix(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Test patients' mean probabilities, one column per frame, on the patients every frame holds."""
    cols = []
    for i, f in enumerate(frames):
        pts = patient_scores(f[f["split"] == "test"]).set_index("patient_id")
        cols.append(pts["probability"].rename(i))
        label = pts["label"]
    out = pd.concat(cols, axis=1, join="inner")
    out["label"] = label.reindex(out.index)
    return out


def _aucs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each column of ``scores`` (rows: observations; 3-D: resamples × observations × columns)."""
    ranks = stats.rankdata(scores, axis=-2)
    pos = (y == 1)
    m, n = pos.sum(axis=-1), (~pos).sum(axis=-1)
    rank_sum = np.where(pos[..., None], ranks, 0).sum(axis=-2)
    return (rank_sum - (m * (m + 1) / 2)[..., None]) / (m * n)[..., None]


def mean_auc_difference(pairs: list[tuple[pd.DataFrame, pd.DataFrame]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean over ``pairs`` of AUC(a) − AUC(b), patient level, on the test patients every frame holds,
    with a 95 % stratified patient-bootstrap interval (the same resamples for every pair)."""
    if not pairs:
        return {"estimate": np.nan, "low": np.nan, "high": np.nan, "patients": 0, "dm_patients": 0}
    mat = _patient_matrix([f for pair in pairs for f in pair])
    y = mat.pop("label").to_numpy().astype(int)
    if y.min() == y.max():
        return {"estimate": np.nan, "low": np.nan, "high": np.nan, "patients": len(y), "dm_patients": int(y.sum())}
    s = mat.to_numpy()

    def diff(a):
        return (a[..., 0::2] - a[..., 1::2]).mean(axis=-1)

    estimate = float(diff(_aucs(y, s)))
    if n_boot <= 0:  # no interval asked for
        return {"estimate": estimate, "low": np.nan, "high": np.nan, "patients": len(y), "dm_patients": int(y.sum())}
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boot = []
    for chunk in np.array_split(np.arange(n_boot), max(1, n_boot // 250)):
        idx = np.hstack([rng.choice(pos, (len(chunk), len(pos))), rng.choice(neg, (len(chunk), len(neg)))])
        boot.append(diff(_aucs(y[idx], s[idx])))
    lo, hi = np.percentile(np.concatenate(boot), [2.5, 97.5])
    return {"estimate": estimate, "low": float(lo), "high": float(hi), "patients": len(y),
            "dm_patients": int(y.sum())}


def _row(key, finding, contrast, planted_text, planted, paper, lite0) -> dict:
    return {"key": key, "finding": finding, "contrast": contrast, "built_into_generator": planted_text,
            "planted_reference": planted["estimate"], "planted_low": planted["low"], "planted_high": planted["high"],
            "paper_backbones": paper["estimate"], "paper_low": paper["low"], "paper_high": paper["high"],
            "lite0": lite0["estimate"], "lite0_low": lite0["low"], "lite0_high": lite0["high"], "p_value": np.nan,
            "patients": paper["patients"], "dm_patients": paper["dm_patients"]}


def _planted_texts(report: dict | None) -> dict:
    model = (report or {}).get("risk_model", {})
    w = model.get("feature_weights", {})
    if not w:
        return dict.fromkeys(("nodes", "rim", "margins", "tnm"), "no: not a synthetic cohort")
    return {
        "nodes": f"yes: nodal features weigh {w['node_necrosis']:g} and {w['node_ene']:g}, the primary's "
                 f"{w['npc_heterogeneity']:g} and {w['npc_infiltration']:g}; N up to {max(model['n_weights']):g}, "
                 f"T up to {max(model['t_weights']):g}",
        "rim": f"yes: the margin features ({w['npc_infiltration']:g} primary, {w['node_ene']:g} nodes) lie only in "
               "the rim outside the drawn rectangle",
        "margins": "yes: T and N are drawn from the published margins",
        "tnm": f"in part: stage enters the planted risk (T up to {max(model['t_weights']):g}, N up to "
               f"{max(model['n_weights']):g}) beside image features weighing up to {max(w.values()):g}",
    }


def _margins_row(clinical: pd.DataFrame, text: str) -> dict:
    """Largest gap (percentage points) between this cohort's T and N shares and the published ones, and
    the χ² goodness-of-fit p of each."""
    pub = published_table1()
    parts, ps = [], []
    for col in ("t_stage", "n_stage"):
        p = pub[pub["variable"] == col].set_index("level")[["train_dm", "train_no_dm", "test_dm", "test_no_dm"]].sum(axis=1)
        obs = clinical[col].value_counts().reindex(p.index, fill_value=0)
        gap = float((100 * (obs / obs.sum() - p / p.sum())).abs().max())
        ps.append(float(stats.chisquare(obs, p / p.sum() * obs.sum()).pvalue))
        parts.append(gap)
    row = {c: np.nan for c in FINDING_COLUMNS}
    row.update(key="margins", finding="Table 1 margins match the paper", contrast="largest gap in T / N shares (percentage points)",
               built_into_generator=text, paper_backbones=max(parts), patients=len(clinical),
               dm_patients=int(clinical["dm"].sum()), p_value=min(ps))
    return row


def design_findings(predictions: dict, references: dict, tnm: pd.DataFrame, clinical: pd.DataFrame,
                    report: dict | None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The paper's findings, whether the generator plants each, and this run's value with a 95 % CI.

    Differences are patient-level test AUC differences on the test patients both sides hold: the mean
    over the paper's four backbones (``paper_backbones``), EfficientNet-Lite0 on its own (``lite0``)
    and the planted-risk reference (``planted_reference``). For the Table 1 row ``paper_backbones`` is
    the largest gap in percentage points between this cohort's and the published T and N shares, and
    ``p_value`` the smaller χ² goodness-of-fit p of the two.
    """
    texts = _planted_texts(report)
    planted = (references or {}).get("planted risk") or {}
    backbones = sorted({b for _, _, b in predictions})
    paper = [b for b in PAPER_BACKBONES if b in backbones]

    def contrast(a, b):  # a, b: (dataset, variant)
        out = {}
        for name, names in (("paper", paper), ("lite0", [LITE0] if LITE0 in backbones else [])):
            pairs = [(predictions[(*a, k)], predictions[(*b, k)]) for k in names
                     if (*a, k) in predictions and (*b, k) in predictions]
            out[name] = mean_auc_difference(pairs, n_boot, seed)
        ref = [(planted[a], planted[b])] if a in planted and b in planted else []
        out["planted"] = mean_auc_difference(ref, n_boot, seed)
        return out

    rows = []
    for v in VARIANTS:
        c = contrast(("CMLN", v), ("NPC", v))
        rows.append(_row(f"nodes_{variant_column(v)}", "Nodes carry more signal than the primary", f"CMLN − NPC, {v}", texts["nodes"],
                         c["planted"], c["paper"], c["lite0"]))
    for d in sorted({d for d, _, _ in predictions}, key=["NPC-CMLN", "NPC", "CMLN", "Max tumour"].index):
        c = contrast((d, INTRA_PERITUMOUR), (d, INTRATUMOUR))
        rows.append(_row(f"rim_{d.lower().replace('-', '_').replace(' ', '_')}", "The 3 mm rim adds signal", f"{d}: intra-peritumour − intratumour", texts["rim"],
                         c["planted"], c["paper"], c["lite0"]))
    rows.append(_margins_row(clinical, texts["margins"]))
    tnm_run = tnm.assign(split="test", probability=tnm["stage_iv"].astype(float))
    key = ("NPC-CMLN", INTRA_PERITUMOUR)
    predictions = {**predictions, **{("TNM", "stage", k): tnm_run for k in [*paper, LITE0]}}
    planted = {**planted, ("TNM", "stage"): tnm_run}
    c = contrast(key, ("TNM", "stage"))
    rows.append(_row("tnm", "The CNNs beat TNM stage", "NPC-CMLN intra-peritumour − stage IV vs I–III", texts["tnm"],
                     c["planted"], c["paper"], c["lite0"]))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)
