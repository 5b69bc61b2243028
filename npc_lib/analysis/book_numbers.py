"""Every number the results chapters cite, computed from what the evaluation returned (never in a
notebook cell). A value is ``(number, decimals)`` for :func:`npc_lib.show.report.glue_numbers` to
format (``n/a`` when missing), or a ready int or string."""
from __future__ import annotations

import numpy as np
import pandas as pd

from npc_lib.analysis.published import published_facts
from npc_lib.vocabulary import VARIANTS, backbone_title, variant_column

NA = "n/a"
REFERENCE_NUMBERS = (("pixel", "pixel_auc"), ("planted", "planted_auc"), ("cnn", "cnn_mean_auc"))


def run_numbers(metrics: pd.DataFrame, test_counts: pd.DataFrame) -> dict:
    """Run counts, mean AUCs (overall, per variant, patient level), test counts, the threshold
    source and the highest image-level test AUC (a description, not a selection)."""
    by_variant = metrics.groupby("variant")["auc"].mean()
    counts = test_counts.set_index("dataset")["test_patients"]  # StudyEvaluation.test_counts
    top = metrics.sort_values("auc", ascending=False).iloc[0]
    paper = published_facts()
    out = {"runs": len(metrics), "mean_auc": (metrics["auc"].mean(), 3),
           "mean_patient_auc": (metrics["patient_auc"].mean(), 3),
           "test_patients_cmln": int(counts.get("CMLN", 0)), "test_patients_npc": int(counts.get("NPC", 0)),
           "threshold_source": " and ".join(metrics["threshold_source"].unique()),
           "best_model": f"{top.dataset}, {top.variant}, {backbone_title(top.backbone)}", "best_auc": (top.auc, 3),
           "paper_best_auc": (paper["best_auc"], 2),
           "paper_best_model": f"{paper['best_dataset']}, {paper['best_variant']}, {backbone_title(paper['best_model'])}"}
    out.update({f"mean_auc_{variant_column(v)}": (by_variant.get(v, np.nan), 3) for v in VARIANTS})
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
    means = table.pivot_table(index="backbone", columns="model", values="auc").mean() if len(table) else {}
    out.update({f"hybrid_{k}_auc": (means[k], 3) if len(table) else NA for k in ("clinical", "image", "hybrid")})
    return out


def negative_control_numbers(negative: pd.DataFrame | None) -> dict:
    """The null AUCs in a sentence: means, range, CIs covering 0.5, test patients, rows inside their bounds."""
    keys = ("null_mean_auc", "null_mean_patient_auc", "null_range", "null_covering", "null_test_patients",
            "null_inside")
    if negative is None:
        return dict.fromkeys(keys, NA)
    cnn = negative[negative["backbone"] != "pixel reference"]
    covers = (negative["patient_auc_low"] <= 0.5) & (negative["patient_auc_high"] >= 0.5)
    return {"null_mean_auc": (cnn["auc"].mean(), 3), "null_mean_patient_auc": (cnn["patient_auc"].mean(), 3),
            "null_range": f"{cnn['patient_auc'].min():.2f}–{cnn['patient_auc'].max():.2f}",
            "null_covering": f"{int(covers.sum())} of {len(negative)}",
            "null_test_patients": int(negative["test_patients"].max()),
            "null_inside": f"{int(negative['inside'].sum())} of {len(negative)}"}


def cam_numbers(table: pd.DataFrame, seconds_per_image: float) -> dict:
    """Grad-CAM in a sentence: CAM-in-ROI share, area share, enrichment, randomisation check, timing."""
    return {"cam_in_roi": (table["cam_in_roi"].mean(), 3), "cam_area_share": (table["area_share"].mean(), 3),
            "cam_enrichment": (table["enrichment"].mean(), 2),
            "cam_random_rho": (table["randomised_spearman"].median(), 2),
            "cam_undefined": int(table["cam_in_roi"].isna().sum()), "cam_ms": (1000 * seconds_per_image, 1)}
