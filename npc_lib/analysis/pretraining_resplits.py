"""What ImageNet pretraining buys, across resplits: EfficientNet-Lite0 heads on ImageNet features against
the same heads on features of the randomly initialised network, refitted on the same patients of every
resplit (same seeds), so each split gives one paired difference per dataset × variant × level.

The splits share most of their patients, so they are not independent samples: the signed-rank p-values
treat them as if they were and are optimistic; the spread of the differences across splits is the more
honest summary, and the book says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from npc_lib.vocabulary import LITE0

PAIR_COLUMNS = ["split", "dataset", "variant", "level", "auc_imagenet", "auc_random", "auc_difference"]
SUMMARY_COLUMNS = ["dataset", "variant", "level", "splits", "median_difference", "difference_2_5",
                   "difference_97_5", "share_imagenet_wins", "wilcoxon_p", "p_holm"]


def pretraining_pairs(main: pd.DataFrame, random: pd.DataFrame) -> pd.DataFrame:
    """Pair the ImageNet Lite0 rows of the main resplits with the random-weight Lite0 rows of the ablation's
    resplits (:func:`npc_lib.analysis.resplits.resplit_aucs` on each), split by split."""
    key = ["split", "dataset", "variant", "level"]
    a = main[main["backbone"] == LITE0][[*key, "auc"]].rename(columns={"auc": "auc_imagenet"})
    b = random[random["backbone"] == LITE0][[*key, "auc"]].rename(columns={"auc": "auc_random"})
    out = a.merge(b, on=key, how="inner", validate="one_to_one")
    out["auc_difference"] = out["auc_imagenet"] - out["auc_random"]
    return out[PAIR_COLUMNS].sort_values(key, kind="stable").reset_index(drop=True)


def pretraining_pair_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × variant × level: the median paired difference (ImageNet − random) with the range of the
    middle 95 % of splits, the share of splits where ImageNet wins, the Wilcoxon signed-rank p over splits
    and Holm's adjustment over all the cells."""
    rows = []
    for (d, v, lev), g in pairs.groupby(["dataset", "variant", "level"], sort=False):
        diff = g["auc_difference"].dropna().to_numpy()
        p = np.nan
        if len(diff) >= 2 and np.any(diff != 0):
            p = float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)
        rows.append({"dataset": d, "variant": v, "level": lev, "splits": len(diff),
                     "median_difference": float(np.median(diff)) if len(diff) else np.nan,
                     "difference_2_5": float(np.percentile(diff, 2.5)) if len(diff) else np.nan,
                     "difference_97_5": float(np.percentile(diff, 97.5)) if len(diff) else np.nan,
                     "share_imagenet_wins": float(np.mean(diff > 0)) if len(diff) else np.nan, "wilcoxon_p": p})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    ok = out["wilcoxon_p"].notna()
    out["p_holm"] = np.nan
    if ok.any():
        out.loc[ok, "p_holm"] = multipletests(out.loc[ok, "wilcoxon_p"], method="holm")[1]
    return out[SUMMARY_COLUMNS]


def pretraining_resplit_numbers(summary: pd.DataFrame) -> dict:
    """The across-splits answer in numbers: cells, cells where ImageNet's median difference is positive,
    cells significant after Holm, the median of the patient-level medians and the typical share of wins."""
    keys = ("pre_rs_cells", "pre_rs_positive", "pre_rs_holm", "pre_rs_median", "pre_rs_wins", "pre_rs_splits")
    if not len(summary):
        return dict.fromkeys(keys, "n/a")
    pat = summary[summary["level"] == "patient"]
    return {"pre_rs_cells": len(summary), "pre_rs_positive": int((summary["median_difference"] > 0).sum()),
            "pre_rs_holm": int((summary["p_holm"] < 0.05).sum()),
            "pre_rs_median": f"{pat['median_difference'].median():+.3f}" if len(pat) else "n/a",
            "pre_rs_wins": f"{pat['share_imagenet_wins'].median():.0%}" if len(pat) else "n/a",
            "pre_rs_splits": int(summary["splits"].max())}
