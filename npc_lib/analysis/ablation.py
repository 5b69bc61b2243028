"""What ImageNet pretraining buys: EfficientNet-Lite0 with and without its ImageNet weights.

Both arms are head-mode runs of the same architecture on the same datasets, variants and test
patients (the main grid's Lite0 runs and ``ablation/models``). Each dataset × variant is compared
at image level (AUCs and the paired test clustered by patient) and at patient level (mean image
probability per patient; DeLong). :func:`pretraining_summary` sets the pair beside the paper's
four backbones and the two references for the book.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from npc_lib.analysis.metrics import MetricError, auc_ci_delong, delong_test, patient_scores
from npc_lib.vocabulary import DATASETS, LITE0, PAPER_BACKBONES, variant_names

COLUMNS = ["dataset", "variant", "level", "auc_imagenet", "auc_imagenet_low", "auc_imagenet_high", "auc_random",
           "auc_random_low", "auc_random_high", "auc_difference", "p_delong", "p_holm", "test_patients", "test_images",
           "note"]


def _pair(a: pd.DataFrame, b: pd.DataFrame, level: str) -> pd.DataFrame:
    """The two arms' test scores side by side on the same images (or patients)."""
    ta, tb = a[a["split"] == "test"], b[b["split"] == "test"]
    if level == "patient":
        ta, tb = patient_scores(ta), patient_scores(tb)
        key = ["patient_id"]
    else:
        key = ["patient_id", "image_id"]
    cols = list(dict.fromkeys(key + ["patient_id", "label", "probability"]))
    both = ta[cols].merge(tb[key + ["probability"]], on=key, suffixes=("_imagenet", "_random"))
    if len(both) != len(ta) or len(both) != len(tb):
        raise MetricError(f"the arms were scored on different test {level}s ({len(ta)} vs {len(tb)})")
    return both


def pretraining_ablation(imagenet_runs: dict, random_runs: dict) -> pd.DataFrame:
    """Paired comparison of Lite0-ImageNet and Lite0-random per dataset × variant × level.

    Parameters
    ----------
    imagenet_runs, random_runs : (dataset, variant) -> the run's per-image predictions

    Returns
    -------
    DataFrame with ``COLUMNS``; ``p_delong`` is the paired DeLong test (image level: patient-clustered),
    ``p_holm`` the same Holm-adjusted over the dataset × variant comparisons of its level.
    """
    rows = []
    for d, v in sorted(set(imagenet_runs) & set(random_runs)):
        for level in ("image", "patient"):
            row = {"dataset": d, "variant": v, "level": level, "note": ""}
            try:
                both = _pair(imagenet_runs[(d, v)], random_runs[(d, v)], level)
                groups = both["patient_id"].to_numpy() if level == "image" else None
                y = both["label"].to_numpy()
                for arm in ("imagenet", "random"):
                    ci = auc_ci_delong(y, both[f"probability_{arm}"], groups=groups)
                    row.update({f"auc_{arm}": ci.auc, f"auc_{arm}_low": ci.low, f"auc_{arm}_high": ci.high})
                t = delong_test(y, both["probability_imagenet"], both["probability_random"], groups=groups)
                row.update(auc_difference=t.auc1 - t.auc2, p_delong=t.p, test_patients=both["patient_id"].nunique(),
                           test_images=int((imagenet_runs[(d, v)]["split"] == "test").sum()))
            except MetricError as exc:
                row["note"] = str(exc)
            rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    for level, idx in out.groupby("level").groups.items():  # Holm over the dataset × variant comparisons of a level
        p = out.loc[idx, "p_delong"].dropna()
        if len(p):
            out.loc[p.index, "p_holm"] = multipletests(p.to_numpy(), method="holm")[1]
    return out


def pretraining_summary(ablation: pd.DataFrame, metrics: pd.DataFrame, planted: pd.DataFrame | None,
                        pixel: pd.DataFrame, level: str = "patient") -> pd.DataFrame:
    """Per dataset × variant at one level: Lite0-ImageNet and Lite0-random (with CIs and the paired p),
    the paper's four backbones (mean, min, max and the weights they ran with), and the planted-risk
    and pixel references (with CIs).

    Parameters
    ----------
    ablation : :func:`pretraining_ablation`
    metrics : one row per main run (``evaluation.evaluate_runs``)
    planted, pixel : the references' scored tables (``references.score_references``); planted may be None

    Returns
    -------
    DataFrame, one row per dataset × variant.
    """
    if ablation is None or ablation.empty:
        return pd.DataFrame()
    a = ablation[ablation["level"] == level].set_index(["dataset", "variant"])
    col = "patient_auc" if level == "patient" else "auc"
    four = metrics[metrics["backbone"].isin(PAPER_BACKBONES)].groupby(["dataset", "variant"]).agg(
        paper_four_mean=(col, "mean"), paper_four_min=(col, "min"), paper_four_max=(col, "max"),
        paper_four_weights=("weights", lambda w: "/".join(sorted(set(w)))))
    out = a[["auc_imagenet", "auc_imagenet_low", "auc_imagenet_high", "auc_random", "auc_random_low",
             "auc_random_high", "auc_difference", "p_delong", "p_holm"]].join(four, how="left")
    for name, ref in (("planted", planted), ("pixel", pixel)):
        if ref is None or ref.empty:
            out[[f"{name}_auc", f"{name}_low", f"{name}_high"]] = np.nan
            continue
        r = ref[ref["level"] == level].set_index(["dataset", "variant"])[["auc", "auc_low", "auc_high"]]
        out = out.join(r.rename(columns={"auc": f"{name}_auc", "auc_low": f"{name}_low", "auc_high": f"{name}_high"}),
                       how="left")
    out = out.reset_index()
    order = out["dataset"].map({d: i for i, d in enumerate(DATASETS)}) * 10 + out["variant"].map(
        {v: i for i, v in enumerate(variant_names())})
    return out.assign(_o=order).sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)


def lite0_runs(runs: dict) -> dict:
    """(dataset, variant) -> predictions of the Lite0 runs among ``runs`` keyed (dataset, variant, backbone)."""
    return {(d, v): p for (d, v, b), p in runs.items() if b == LITE0}
