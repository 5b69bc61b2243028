"""Clinical table, latent image features and DM outcome of the synthetic cohort.

The DM outcome is planted with documented strengths (see ``RISK_WEIGHTS``): T and N stage,
two primary-tumour image features (intratumoural heterogeneity; margin infiltration, which
lies in the 3 mm peritumoural rim) and two nodal features (necrosis inside the node;
extranodal extension, peritumoural), plus an unobserved biological factor that no image
shows (a stand-in for EBV DNA load). T and N margins follow Table 1 of Hua et al. 2023
(DOI 10.2174/1386207325666220919091210).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from npc_lib.data.staging import N_LEVELS, T_LEVELS, overall_stage
from npc_lib.synth.timing import calibrated_subset, draw_times, observe, time_report

# Published cohort margins (Table 1, train + test, DM + no DM).
PAPER_T_COUNTS = np.array([48, 152, 120, 121])
PAPER_N_COUNTS = np.array([54, 85, 267, 35])
PAPER_PATIENTS, PAPER_DM = 441, 114
PAPER_MALE_FRACTION = 326 / 441

# Additive contributions to the DM log-odds (scenario "paper").
T_WEIGHTS = (0.0, 0.4, 0.9, 2.6)          # T1..T4 (size of the primary is visible)
N_WEIGHTS = (0.0, 0.7, 1.3, 3.2)          # N0..N3 (node count and size are visible)
RISK_WEIGHTS = {
    "npc_heterogeneity": 1.5,   # intratumoural enhancement heterogeneity of the primary
    "npc_infiltration": 3.0,    # irregular primary margin infiltrating ≤ 3 mm (peritumoural)
    "node_necrosis": 5.5,       # necrotic fraction inside the nodes (intratumoural)
    "node_ene": 7.0,            # extranodal extension ≤ 3 mm into fat (peritumoural)
    "unobserved": 0.8,          # per SD; not visible in any image
}

# The latent image features: how each is drawn, which region's images show it and where. The risk
# model above multiplies them; generation_report.json records both, and the book's design table is
# read from that report.
FEATURE_DESIGN = {
    "npc_heterogeneity": {"title": "primary tumour: enhancement heterogeneity", "draw": ("beta", 2.0, 2.0),
                          "region": "NPC", "shown": "inside the drawn rectangle"},
    "npc_infiltration": {"title": "primary tumour: margin infiltration", "draw": ("beta", 1.3, 2.5),
                         "region": "NPC", "shown": "in the rim outside the drawn rectangle only"},
    "node_necrosis": {"title": "nodes: necrosis", "draw": ("beta", 1.0, 1.8), "region": "CMLN",
                      "shown": "inside the drawn rectangle (none without nodes)"},
    "node_ene": {"title": "nodes: extranodal extension", "draw": ("beta", 1.0, 2.2), "region": "CMLN",
                 "shown": "in the rim outside the drawn rectangle only (none without nodes)"},
    "unobserved": {"title": "unobserved biology (a stand-in for EBV DNA)", "draw": ("normal", 0.0, 1.0),
                   "region": "none", "shown": "in no image"},
}


def feature_design() -> dict:
    """The feature table of the generation report: weight, distribution, region and place per feature."""
    names = {"beta": "Beta", "normal": "Normal"}
    return {k: {"title": d["title"], "weight": RISK_WEIGHTS[k], "region": d["region"], "shown": d["shown"],
                "distribution": f"{names[d['draw'][0]]}({d['draw'][1]:g}, {d['draw'][2]:g})"}
            for k, d in FEATURE_DESIGN.items()}


SCENARIOS = ("paper", "null")


@dataclass(frozen=True)
class CohortDraw:
    """Clinical table, ground-truth table and generation report of one synthetic cohort."""

    clinical: pd.DataFrame
    truth: pd.DataFrame
    planted_auc: dict
    time_model: dict


def _patient_ids(n: int, prefix: str = "P") -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


REFERENCE_PATIENTS = 20000  # the large centre-A draw whose intercept other centres share


@lru_cache(maxsize=1)
def reference_threshold() -> float:
    """Centre A's intercept: the threshold on ``risk + logistic noise`` that gives the paper's DM share in a
    large centre-A draw (a property of the risk model, not of one cohort)."""
    return float(draw_cohort(REFERENCE_PATIENTS, 10_000).truth.attrs["threshold"])


def draw_cohort(n: int = PAPER_PATIENTS, seed: int = 42, scenario: str = "paper",
                prevalence: float = PAPER_DM / PAPER_PATIENTS, centre=None) -> CohortDraw:
    """Draw clinical variables, latent image features and DM for ``n`` patients.

    Who would develop DM are the patients with the largest latent ``risk + logistic noise`` (the threshold
    form of a logistic model); DM is what follow-up observes of it (:mod:`npc_lib.synth.timing`: a DM after the
    end of follow-up is censored like anyone else), and the threshold is set so that exactly
    ``round(prevalence * n)`` DM are observed. In scenario ``null`` who would develop DM is a random subset,
    independent of everything else, sized the same way. Another ``centre``
    (:class:`npc_lib.synth.centres.Centre`) shifts the T and N shares by its mixes and keeps the
    planted biology: the same risk model and centre A's intercept (:func:`reference_threshold`), so its
    DM rate follows from its case mix.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if n < 10:
        raise ValueError(f"a cohort needs at least 10 patients, got {n}")
    rng = np.random.default_rng([seed, 0])
    other = centre is not None and centre.name != "A"
    t_p = PAPER_T_COUNTS * np.asarray(centre.t_mix if other else (1, 1, 1, 1), float)
    n_p = PAPER_N_COUNTS * np.asarray(centre.n_mix if other else (1, 1, 1, 1), float)
    t_idx = rng.choice(4, size=n, p=t_p / t_p.sum())
    n_idx = rng.choice(4, size=n, p=n_p / n_p.sum())
    t_stage = np.array(T_LEVELS)[t_idx]
    n_stage = np.array(N_LEVELS)[n_idx]
    stage = np.array([overall_stage(t, s) for t, s in zip(t_stage, n_stage)])
    age = np.clip(np.round(rng.normal(51.0, 11.6, n)), 18, 85).astype(int)
    sex = np.where(rng.random(n) < PAPER_MALE_FRACTION, "M", "F")
    p_ic = np.where(stage == "IV", 0.72, np.where(stage == "III", 0.45, 0.15))
    treatment = np.where(rng.random(n) < p_ic, "IC+CCR", "CCR")

    has_nodes = n_idx > 0
    feats = pd.DataFrame({k: getattr(rng, d["draw"][0])(*d["draw"][1:], n) for k, d in FEATURE_DESIGN.items()})
    for k in ("node_necrosis", "node_ene"):  # no nodes, no nodal feature
        feats[k] = np.where(has_nodes, feats[k], 0.0)
    parts = pd.DataFrame({
        "risk_t": np.array(T_WEIGHTS)[t_idx],
        "risk_n": np.array(N_WEIGHTS)[n_idx],
        **{f"risk_{k}": w * feats[k].to_numpy() for k, w in RISK_WEIGHTS.items()},
    })
    linear_risk = parts.sum(axis=1).to_numpy()
    noise = rng.logistic(size=n)
    # follow-up comes from the study's calendar, drawn before (and without) the outcome, from the same stream in
    # both scenarios; in the null scenario the time has no necrosis signal either, or which DM fall within
    # follow-up (the observed label) would depend on the nodes
    times = draw_times(feats["node_necrosis"].to_numpy(), seed, signal=scenario == "paper")
    observable = times["observable"].to_numpy()
    if other:  # the same biology: centre A's intercept, the DM rate follows from this case mix
        threshold = reference_threshold()
        if scenario == "paper":
            ever = linear_risk + noise > threshold
        else:  # null: as many observed DM as the paper's share gives, drawn at random
            ever = calibrated_subset(rng.permutation(n), observable, int(round(PAPER_DM / PAPER_PATIENTS * n)))
    else:
        # who would develop DM: the largest risk + noise, until the observed count (DM within follow-up) is the
        # target; the intercept is where that stops, so the observed DM rate matches Table 1
        order = np.argsort(-(linear_risk + noise), kind="stable") if scenario == "paper" else rng.permutation(n)
        ever = calibrated_subset(order, observable, int(round(prevalence * n)))
        threshold = float(np.min((linear_risk + noise)[ever])) if ever.any() else np.inf
    seen = observe(times, ever)
    dm = seen["dm_event"].to_numpy()
    n_dm = int(dm.sum())
    prob = 1.0 / (1.0 + np.exp(-(linear_risk - threshold)))

    ids = _patient_ids(n, centre.id_prefix if other else "P")
    clinical = pd.DataFrame({
        "patient_id": ids, "age": age, "sex": sex, "t_stage": t_stage, "n_stage": n_stage,
        "overall_stage": stage, "treatment": treatment, "dm": dm,
    })
    clinical["dm_months"] = seen["dm_months"].to_numpy()
    clinical["dm_event"] = seen["dm_event"].to_numpy()
    truth = pd.concat([clinical[["patient_id", "t_stage", "n_stage", "overall_stage", "dm"]],
                       feats, parts, times[["timing_score", "dm_time_true", "entry_month", "follow_up"]]], axis=1)
    truth["dm_ever"] = ever.astype(int)
    truth["linear_risk"] = linear_risk
    truth.attrs["threshold"] = float(threshold)
    truth["risk_probability"] = prob if scenario == "paper" else float(ever.mean())
    return CohortDraw(clinical, truth, planted_risk_aucs(truth), time_report(times, ever, linear_risk))


def planted_risk_aucs(truth: pd.DataFrame) -> dict:
    """AUCs of the planted risk components against the realised DM: whole cohort, patient level,
    latent features. A description of the draw, not a bound on any model (see the analysis
    module `references` for the per-dataset reference on the test patients)."""
    y = truth["dm"].to_numpy()
    p = {c: truth[c].to_numpy() for c in truth.columns if c.startswith("risk_")}
    npc = p["risk_t"] + p["risk_npc_heterogeneity"] + p["risk_npc_infiltration"]
    cmln = p["risk_n"] + p["risk_node_necrosis"] + p["risk_node_ene"]
    intra = p["risk_t"] + p["risk_n"] + p["risk_npc_heterogeneity"] + p["risk_node_necrosis"]
    peri = intra + p["risk_npc_infiltration"] + p["risk_node_ene"]
    scores = {
        "stage_iv_vs_i_iii": (truth["overall_stage"] == "IV").astype(int).to_numpy(),
        "tnm_risk": p["risk_t"] + p["risk_n"],
        "npc_features": npc,
        "cmln_features": cmln,
        "image_intratumoural_only": intra,
        "image_with_peritumoural": peri,
        "full_risk": truth["linear_risk"].to_numpy(),
    }
    if y.min() == y.max():
        return {k: float("nan") for k in scores}
    return {k: round(float(roc_auc_score(y, s)), 4) for k, s in scores.items()}
