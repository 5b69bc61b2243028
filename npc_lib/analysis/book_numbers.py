"""Every number the results chapters cite, computed from what the evaluation returned (never in a
notebook cell). A value is ``(number, decimals)`` for :func:`npc_lib.show.report.glue_numbers` to
format (``n/a`` when missing), or a ready int or string."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.null_checks import ALARM_LEVEL
from npc_lib.analysis.published import published_facts
from npc_lib.vocabulary import LITE0, PAPER_BACKBONES, VARIANTS, backbone_title, variant_column

NA = "n/a"
REFERENCE_NUMBERS = (("pixel", "pixel_auc"), ("planted", "planted_auc"), ("cnn", "cnn_mean_auc"))


def run_numbers(metrics: pd.DataFrame, test_counts: pd.DataFrame) -> dict:
    """Run counts, mean AUCs (overall, per variant, patient level) over the paper's four backbones (as its
    Table 2 averages; EfficientNet-Lite0's beside them), test counts, the threshold source and the highest
    image-level test AUC (a description, not a selection)."""
    paper_runs = metrics[metrics["backbone"].isin(PAPER_BACKBONES)]
    lite0 = metrics[metrics["backbone"] == LITE0]
    by_variant = paper_runs.groupby("variant")["auc"].mean()
    counts = test_counts.set_index("dataset")  # StudyEvaluation.test_counts
    top = metrics.sort_values("auc", ascending=False).iloc[0]
    paper = published_facts()
    out = {"runs": len(metrics), "runs_paper": len(paper_runs), "mean_auc": (paper_runs["auc"].mean(), 3),
           "mean_patient_auc": (paper_runs["patient_auc"].mean(), 3), "mean_auc_lite0": (lite0["auc"].mean(), 3),
           "mean_patient_auc_lite0": (lite0["patient_auc"].mean(), 3),
           "threshold_source": " and ".join(metrics["threshold_source"].unique()),
           "best_model": f"{top.dataset}, {top.variant}, {backbone_title(top.backbone)}", "best_auc": (top.auc, 3),
           "paper_best_auc": (paper["best_auc"], 2),
           "paper_best_model": f"{paper['best_dataset']}, {paper['best_variant']}, {backbone_title(paper['best_model'])}"}
    for d in ("CMLN", "NPC"):
        for col in ("test_patients", "test_dm_patients"):
            out[f"{col}_{d.lower()}"] = int(counts[col].get(d, 0)) if col in counts else NA
    ci = paper_runs.dropna(subset=["patient_auc_low", "patient_auc_high"]) if "patient_auc_low" in paper_runs else paper_runs.iloc[:0]
    out["ci_half_width"] = (((ci["patient_auc_high"] - ci["patient_auc_low"]) / 2).median(), 2) if len(ci) else NA
    out.update({f"mean_auc_{variant_column(v)}": (by_variant.get(v, np.nan), 3) for v in VARIANTS})
    return out


def _ordinal(x: float) -> str:
    """``1`` -> ``1st``, ``99`` -> ``99th``, ``2.5`` -> ``2.5th``."""
    if float(x) != int(x):
        return f"{x:g}th"
    n = int(x)
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def profile_numbers(profile) -> dict:
    """The run's settings as the book cites them (``cfg_*``): split, sizes, optimiser, resplits.

    Parameters
    ----------
    profile : the run's :class:`~npc_lib.config.Profile`

    Returns
    -------
    dict for :func:`npc_lib.show.report.glue_numbers`.
    """
    t, g, f = profile.train, profile.geometry, profile.split.test_fraction
    lr = f"{t.learning_rate:.0e}".replace("e-0", "e-").replace("e+0", "e")
    mode = {"head": "frozen backbones, heads trained on cached features (head mode)",
            "finetune": "every layer fine-tuned (fine-tuning mode)"}.get(t.mode, t.mode)
    return {"cfg_profile": profile.name, "cfg_mode": t.mode, "cfg_mode_text": mode, "cfg_epochs": t.epochs,
            "cfg_batch": t.batch_size, "cfg_lr": lr, "cfg_dropout": f"{t.dropout:g}", "cfg_l2": f"{t.l2:g}",
            "cfg_canvas": g.canvas, "cfg_input": g.input_size, "cfg_rim_mm": f"{g.peritumour_mm:g}",
            "cfg_percentiles": f"{_ordinal(g.low_percentile)}–{_ordinal(g.high_percentile)}",
            "cfg_split": f"{(1 - f) / f:.3g}:1 (test share {f:.0%})", "cfg_test_share": f"{f:.0%}",
            "cfg_resplits": profile.resplits, "cfg_backbones": len(profile.backbones),
            "cfg_models": len(profile.backbones) * len(profile.datasets) * len(profile.variants),
            "cfg_seed_split": profile.split.seed, "cfg_seed_train": t.seed, "cfg_seed_cohort": profile.cohort.seed}


def finding_numbers(findings: pd.DataFrame) -> dict:
    """The design-vs-found table's values as short texts, ``finding_<key>``: the four-backbone value with its
    CI (``finding_nodes_intra_peritumour``, ``finding_rim_npc_cmln``, ``finding_tnm``, ...), or the largest
    Table 1 gap in percentage points (``finding_margins``)."""
    out = {}
    for r in findings.itertuples():
        if pd.isna(r.paper_backbones):
            out[f"finding_{r.key}"] = NA
        elif pd.notna(r.paper_low):
            out[f"finding_{r.key}"] = f"{r.paper_backbones:+.3f} ({r.paper_low:+.3f} to {r.paper_high:+.3f})"
        else:
            out[f"finding_{r.key}"] = f"{r.paper_backbones:.1f}"
    return out


def reference_numbers(summary: pd.DataFrame) -> dict:
    """Image-level AUCs of the pixel and planted references and the CNNs' mean, for CMLN and NPC."""
    img = summary[summary["level"] == "image"].set_index(["dataset", "variant"])
    out = {}
    for name, col in REFERENCE_NUMBERS:
        for d in ("CMLN", "NPC"):
            for v in VARIANTS:
                value = img[col].get((d, v), np.nan) if col in img else np.nan
                out[f"{name}_{d.lower()}_{variant_column(v)}"] = (value, 2)
    return out


def pretraining_numbers(pre: pd.DataFrame) -> dict:
    """Lite0 with ImageNet weights against random initialisation (patient level), or n/a."""
    if not len(pre):
        return dict.fromkeys(("pretraining_imagenet_auc", "pretraining_random_auc", "pretraining_gain",
                              "pretraining_holm"), NA)
    return {"pretraining_imagenet_auc": (pre["auc_imagenet"].mean(), 3),
            "pretraining_random_auc": (pre["auc_random"].mean(), 3),
            "pretraining_gain": f"{pre['auc_difference'].mean():+.3f}",
            "pretraining_holm": f"{int((pre['p_holm'] < 0.05).sum())} of {int(pre['p_holm'].notna().sum())}"}


def comparison_numbers(tnm_baseline: dict, tnm_comparison: pd.DataFrame, selection: pd.DataFrame,
                       hybrid: dict) -> dict:
    """TNM stage's AUC, the models better than it after Holm, the model-choice criterion and the
    hybrid model's mean AUCs (n/a without a hybrid)."""
    cmp = tnm_comparison
    out = {"eval_tnm_auc": (tnm_baseline["stage_iv_vs_i_iii"]["auc"], 3),
           "n_better_than_tnm": int(((cmp["p_holm"] < 0.05) & (cmp["model_auc"] > cmp["tnm_auc"])).sum()),
           "selection_criterion": "; ".join(selection.loc[selection["selected"], "criterion"].unique())}
    table = hybrid.get("table", pd.DataFrame())
    if len(table) and table["backbone"].isin(PAPER_BACKBONES).any():  # the paper's four, as every average here
        table = table[table["backbone"].isin(PAPER_BACKBONES)]
    means = table.pivot_table(index="backbone", columns="model", values="auc").mean() if len(table) else {}
    out.update({f"hybrid_{k}_auc": (means[k], 3) if len(table) else NA for k in ("clinical", "image", "hybrid")})
    return out


def false_alarm_text() -> str:
    """How often a clean run alarms, as measured by simulation for the checks as they are (or that it was not)."""
    from npc_lib.analysis.null_simulation import measured_alarm_rate
    m = measured_alarm_rate()
    if m is None:
        return "not yet measured for these checks"
    return (f"about {m['rate']:.1%} (95 % CI {m['ci_low']:.1%} to {m['ci_high']:.1%}; {int(m['alarms'])} alarms in "
            f"{int(m['clean_draws'])} simulated clean studies of the demo's size)")


def negative_control_numbers(negative: pd.DataFrame | None, family: pd.DataFrame | None = None) -> dict:
    """The null control in a sentence: means, range, CIs covering 0.5, test patients, rows inside their bounds,
    family checks inside theirs, the backbones it ran."""
    keys = ("null_mean_auc", "null_mean_patient_auc", "null_range", "null_covering", "null_test_patients",
            "null_inside", "null_backbones", "null_family_inside", "null_rows")
    level = {"null_level": f"{ALARM_LEVEL:g}", "null_levels_sum": f"{200 * ALARM_LEVEL:g} %",
             "null_false_alarm": false_alarm_text()}
    if negative is None:
        return {**dict.fromkeys(keys, NA), **level}
    cnn = negative[negative["backbone"] != "pixel reference"]
    covers = (negative["patient_auc_low"] <= 0.5) & (negative["patient_auc_high"] >= 0.5)
    return {**level, "null_mean_auc": (cnn["auc"].mean(), 3), "null_mean_patient_auc": (cnn["patient_auc"].mean(), 3),
            "null_range": f"{cnn['patient_auc'].min():.2f}–{cnn['patient_auc'].max():.2f}",
            "null_covering": f"{int(covers.sum())} of {len(negative)}",
            "null_test_patients": int(negative["test_patients"].max()),
            "null_inside": f"{int(negative['inside'].sum())} of {len(negative)}", "null_rows": len(negative),
            "null_backbones": ", ".join(backbone_title(b) for b in cnn["backbone"].unique()),
            "null_family_inside": f"{int(family['inside'].sum())} of {len(family)}" if family is not None else NA}


def cam_numbers(table: pd.DataFrame, seconds_per_image: float, min_grid: int | None = None) -> dict:
    """Grad-CAM in a sentence: CAM-in-ROI share, area share, enrichment, randomisation check, timing, the
    smallest map side a layer must have (``min_grid``) and the map sizes used."""
    grids = sorted(set(table["cam_grid"]), key=lambda g: int(str(g).split("x")[0])) if "cam_grid" in table else []
    return {"cam_min_grid": f"{min_grid} × {min_grid}" if min_grid else NA,
            "cam_grids": ", ".join(str(g).replace("x", " × ") for g in grids) or NA,"cam_in_roi": (table["cam_in_roi"].mean(), 3), "cam_area_share": (table["area_share"].mean(), 3),
            "cam_enrichment": (table["enrichment"].mean(), 2),
            "cam_random_rho": (table["randomised_spearman"].median(), 2),
            "cam_undefined": int(table["cam_in_roi"].isna().sum()), "cam_ms": (1000 * seconds_per_image, 1)}


def at_a_glance(metrics: pd.DataFrame, selection: pd.DataFrame, tnm_baseline: dict, summary: pd.DataFrame,
                negative: pd.DataFrame | None, split: pd.Series, clinical: pd.DataFrame, synthetic: bool,
                negative_family: pd.DataFrame | None = None) -> pd.DataFrame:
    """"This run at a glance" for the landing page: cohort, models, the model chosen without the test
    set and its test AUC beside TNM stage and the references, and the negative control (rows inside
    their bounds on every checked statistic, and the family checks)."""
    test = split[split == "test"].index
    dm_test = int(clinical.loc[clinical["patient_id"].isin(test), "dm"].sum())
    chosen = selection[selection["selected"]].copy()
    chosen["_a"] = chosen["train_oof_auc"].fillna(-1)
    pick = chosen.sort_values(["_a", "dataset"], ascending=[False, True]).iloc[0] if len(chosen) else None
    rows = [("Cohort", f"{'synthetic' if synthetic else 'your own'}: {len(split)} patients, "
                       f"{int(clinical['dm'].sum())} with DM; {len(split) - len(test)} train, {len(test)} test "
                       f"({dm_test} with DM)"),
            ("Models", f"{len(metrics)} ({int(metrics['backbone'].isin(PAPER_BACKBONES).sum())} of the paper's four "
                       f"backbones, {int((metrics['backbone'] == LITE0).sum())} EfficientNet-Lite0); weights: "
                       + ", ".join(sorted(metrics["weights"].unique())))]
    if pick is not None:
        m = metrics[(metrics["dataset"] == pick.dataset) & (metrics["variant"] == pick.variant)
                    & (metrics["backbone"] == pick.backbone)].iloc[0]
        rows.append(("Chosen on training data", f"{pick.dataset}, {pick.variant}, {backbone_title(pick.backbone)} "
                                                f"(training out-of-fold AUC {pick.train_oof_auc:.2f})"
                     if pd.notna(pick.train_oof_auc) else f"{pick.dataset}, {pick.variant}, {backbone_title(pick.backbone)} "
                                                          "(a priori)"))
        rows.append(("Its test AUC, patient level", f"{m.patient_auc:.2f} ({m.patient_auc_low:.2f}–{m.patient_auc_high:.2f})"))
        ref = summary[(summary["dataset"] == pick.dataset) & (summary["variant"] == pick.variant)
                      & (summary["level"] == "patient")]
        if len(ref) and "planted_auc" in ref and pd.notna(ref["planted_auc"].iloc[0]):
            r = ref.iloc[0]
            rows.append(("Planted-risk reference, same patients", f"{r.planted_auc:.2f} ({r.planted_low:.2f}–{r.planted_high:.2f})"))
        if len(ref):
            r = ref.iloc[0]
            rows.append(("Pixel reference model, same patients", f"{r.pixel_auc:.2f} ({r.pixel_low:.2f}–{r.pixel_high:.2f})"))
    s = tnm_baseline["stage_iv_vs_i_iii"]
    rows.append(("TNM stage IV vs I–III", f"{s['auc']:.2f} ({s.get('auc_low', np.nan):.2f}–{s.get('auc_high', np.nan):.2f})"))
    if negative is not None and len(negative):
        inside = int(negative["inside"].sum())
        fam_ok = negative_family is None or bool(negative_family["inside"].all())
        family = "" if negative_family is None else \
            f"; {int(negative_family['inside'].sum())} of {len(negative_family)} family checks inside"
        rows.append(("Negative control", f"{inside} of {len(negative)} null models inside their chance bounds on "
                                         f"every checked statistic{family}"
                                         + ("" if inside == len(negative) and fam_ok else " — ALARM: see the results page")))
    else:
        rows.append(("Negative control", "not run (it needs the synthetic cohort)"))
    return pd.DataFrame(rows, columns=["", "This run"])
