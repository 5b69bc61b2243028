"""What ImageNet pretraining buys, across resplits: EfficientNet-Lite0 heads on ImageNet features against
the same heads on features of the randomly initialised network, refitted on the same patients of every
resplit (same seeds), so each split gives one paired difference per dataset × variant × level.

The splits share most of their patients, so they are not independent samples: a test that treats them as if
they were (a paired t or signed-rank test over splits) has a standard error too small by a factor that does not
shrink with more splits, and its p value tends to 0 as the same data are resplit more often. The p value here is
the corrected resampled t-test of Nadeau and Bengio (2003), whose variance adds the test-to-training size ratio
to 1/J; it is reported beside the spread of the differences, which remains the primary summary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from npc_lib.vocabulary import LITE0

PAIR_COLUMNS = ["split", "dataset", "variant", "level", "auc_imagenet", "auc_random", "auc_difference"]
SUMMARY_COLUMNS = ["dataset", "variant", "level", "splits", "median_difference", "difference_2_5",
                   "difference_97_5", "share_imagenet_wins", "mean_difference", "p_corrected", "p_corrected_holm"]


def corrected_resampled_t(differences, test_fraction: float) -> dict:
    """The corrected resampled t-test (Nadeau and Bengio, 2003) of a mean difference over J resplits of one data
    set: t = mean / sqrt((1/J + n_test/n_train) · s²), J − 1 degrees of freedom; beside it the naive paired t-test
    that treats the splits as independent (variance s²/J).

    Parameters
    ----------
    differences : one paired difference per resplit
    test_fraction : the share of patients each resplit tests on

    Returns
    -------
    dict: ``mean``, ``t_corrected``, ``p_corrected``, ``t_naive``, ``p_naive`` (two-sided; NaN with fewer than two
    splits or no spread).
    """
    d = np.asarray(differences, float)
    d = d[np.isfinite(d)]
    out = {"mean": float(d.mean()) if len(d) else np.nan}
    if len(d) < 2 or d.std(ddof=1) == 0:
        return {**out, "t_corrected": np.nan, "p_corrected": np.nan, "t_naive": np.nan, "p_naive": np.nan}
    var = d.var(ddof=1)
    ratio = test_fraction / (1 - test_fraction)
    for name, scale in (("corrected", 1 / len(d) + ratio), ("naive", 1 / len(d))):
        t = out["mean"] / np.sqrt(scale * var)
        out[f"t_{name}"], out[f"p_{name}"] = float(t), float(2 * stats.t.sf(abs(t), len(d) - 1))
    return out


def pretraining_pairs(main: pd.DataFrame, random: pd.DataFrame) -> pd.DataFrame:
    """Pair the ImageNet Lite0 rows of the main resplits with the random-weight Lite0 rows of the ablation's
    resplits (:func:`npc_lib.analysis.resplits.resplit_aucs` on each), split by split."""
    key = ["split", "dataset", "variant", "level"]
    a = main[main["backbone"] == LITE0][[*key, "auc"]].rename(columns={"auc": "auc_imagenet"})
    b = random[random["backbone"] == LITE0][[*key, "auc"]].rename(columns={"auc": "auc_random"})
    out = a.merge(b, on=key, how="inner", validate="one_to_one")
    out["auc_difference"] = out["auc_imagenet"] - out["auc_random"]
    return out[PAIR_COLUMNS].sort_values(key, kind="stable").reset_index(drop=True)


def pretraining_pair_summary(pairs: pd.DataFrame, test_fraction: float = 0.2) -> pd.DataFrame:
    """Per dataset × variant × level: the median paired difference (ImageNet − random) with the range of the
    middle 95 % of splits, the share of splits where ImageNet wins, the mean difference with its corrected
    resampled t-test (:func:`corrected_resampled_t`; ``test_fraction``: the resplits' test share) and Holm's
    adjustment of those p values over all the cells."""
    rows = []
    for (d, v, lev), g in pairs.groupby(["dataset", "variant", "level"], sort=False):
        diff = g["auc_difference"].dropna().to_numpy()
        test = corrected_resampled_t(diff, test_fraction)
        rows.append({"dataset": d, "variant": v, "level": lev, "splits": len(diff),
                     "median_difference": float(np.median(diff)) if len(diff) else np.nan,
                     "difference_2_5": float(np.percentile(diff, 2.5)) if len(diff) else np.nan,
                     "difference_97_5": float(np.percentile(diff, 97.5)) if len(diff) else np.nan,
                     "share_imagenet_wins": float(np.mean(diff > 0)) if len(diff) else np.nan,
                     "mean_difference": test["mean"], "p_corrected": test["p_corrected"]})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    ok = out["p_corrected"].notna()
    out["p_corrected_holm"] = np.nan
    if ok.any():
        out.loc[ok, "p_corrected_holm"] = multipletests(out.loc[ok, "p_corrected"], method="holm")[1]
    return out[SUMMARY_COLUMNS]


def pretraining_resplit_numbers(summary: pd.DataFrame) -> dict:
    """The across-splits answer in numbers: cells, cells where ImageNet's median difference is positive, cells
    where the corrected test (Holm over the cells) finds ImageNet better and, separately, worse, the median of the
    patient-level medians and the typical share of wins."""
    keys = ("pre_rs_cells", "pre_rs_positive", "pre_rs_better", "pre_rs_worse", "pre_rs_median", "pre_rs_wins",
            "pre_rs_splits")
    if not len(summary):
        return dict.fromkeys(keys, "n/a")
    pat = summary[summary["level"] == "patient"]
    sig = summary["p_corrected_holm"] < 0.05
    return {"pre_rs_cells": len(summary), "pre_rs_positive": int((summary["median_difference"] > 0).sum()),
            "pre_rs_better": int((sig & (summary["mean_difference"] > 0)).sum()),
            "pre_rs_worse": int((sig & (summary["mean_difference"] < 0)).sum()),
            "pre_rs_median": f"{pat['median_difference'].median():+.3f}" if len(pat) else "n/a",
            "pre_rs_wins": f"{pat['share_imagenet_wins'].median():.0%}" if len(pat) else "n/a",
            "pre_rs_splits": int(summary["splits"].max())}
