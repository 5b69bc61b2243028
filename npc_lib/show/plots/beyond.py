"""Figures of the "beyond the paper" chapter: AUC across resplits, Kaplan–Meier curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from npc_lib.analysis.resplits import TNM, averaged_backbones
from npc_lib.show.plots.base import DATASET_ORDER, VARIANT_ORDER
from npc_lib.vocabulary import LITE0, PAPER_BACKBONES


def fig_resplits(resplits: pd.DataFrame, metrics: pd.DataFrame, published: pd.DataFrame | None = None,
                 level: str = "image"):
    """Test AUC across resplits per dataset × variant (mean over the paper's four backbones per split, one
    dot each, as the paper's averages), with the run's own split (red diamond), the published average AUC
    (black bar) and EfficientNet-Lite0's median over the splits beside them (orange triangle) marked.

    Parameters
    ----------
    resplits : ``evaluation/resplits.csv`` (:func:`npc_lib.analysis.resplits.resplit_aucs`)
    metrics : the runs' own test metrics (``evaluation/metrics.csv``)
    published : the paper's Table 2 (``analysis.published.published_table2``), optional
    level : ``image`` (the paper's level) or ``patient``

    Returns
    -------
    matplotlib Figure.
    """
    part = resplits[resplits["level"] == level]
    cell = averaged_backbones(part).groupby(["split", "dataset", "variant"])["auc"].mean().reset_index()
    lite0 = part[part["backbone"] == LITE0].groupby(["dataset", "variant"])["auc"].median()
    order = [(d, v) for d in DATASET_ORDER for v in VARIANT_ORDER if ((cell.dataset == d) & (cell.variant == v)).any()]
    labels = [f"{d}\n{v}" for d, v in order]
    cell["cell"] = [f"{d}\n{v}" for d, v in zip(cell["dataset"], cell["variant"])]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(order)), 4.2))
    sns.stripplot(data=cell, x="cell", y="auc", order=labels, color="#4477aa", alpha=0.6, size=4, jitter=0.2, ax=ax)
    own = averaged_backbones(metrics).groupby(["dataset", "variant"])["auc" if level == "image" else "patient_auc"].mean()
    xs = np.arange(len(order))
    ax.scatter(xs, [own.get(k, np.nan) for k in order], marker="D", s=45, color="#cc3311", zorder=3,
               label="the run's own split")
    if len(lite0):
        ax.scatter(xs + 0.3, [lite0.get(k, np.nan) for k in order], marker="^", s=40, color="#ee7733", zorder=3,
                   label="EfficientNet-Lite0, median over splits (added)")
    if published is not None and level == "image":
        four = published[published["model"].isin(PAPER_BACKBONES)]
        pub = [four.loc[four["dataset"] == d, f"auc_{v.replace('-', '_')}"].mean() for d, v in order]
        ax.scatter(xs, pub, marker="_", s=400, color="black", zorder=3, label="published (paper's average)")
    ax.axhline(0.5, ls=":", c="grey")
    n = cell["split"].nunique()
    ax.set(xlabel="", ylabel=f"test AUC, {level} level\n(mean over the paper's four backbones)", ylim=(0.3, 1.0),
           title=f"Test AUC across {n} resplits of the same patients")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def fig_km(km: dict, title: str):
    """Kaplan–Meier curves of the test patients above and below the training median score.

    Parameters
    ----------
    km : :func:`npc_lib.analysis.survival.km_by_threshold`
    title : the model it belongs to

    Returns
    -------
    matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for (name, curve), colour in zip(km["curves"].items(), ("#cc3311", "#4477aa")):
        ax.step(curve["months"], curve["free_of_dm"], where="post", color=colour,
                label=f"{name} (n = {km['n'][name]})")
    ax.set(xlabel="months from diagnosis", ylabel="free of distant metastasis", ylim=(0, 1.02),
           title=f"{title}\nlog-rank p = {km['logrank_p']:.3g} (split at the training median)")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def fig_pretraining_resplits(pairs: pd.DataFrame, level: str = "patient"):
    """Paired differences in test AUC, EfficientNet-Lite0 with ImageNet weights minus the same heads from random
    weights, one dot per resplit, per dataset × variant; the median of each cell marked.

    Parameters
    ----------
    pairs : ``evaluation/pretraining_resplits.csv`` (:func:`npc_lib.analysis.pretraining_resplits.pretraining_pairs`)
    level : ``patient`` or ``image``

    Returns
    -------
    matplotlib Figure.
    """
    part = pairs[pairs["level"] == level].copy()
    order = [(d, v) for d in DATASET_ORDER for v in VARIANT_ORDER if ((part.dataset == d) & (part.variant == v)).any()]
    labels = [f"{d}\n{v}" for d, v in order]
    part["cell"] = [f"{d}\n{v}" for d, v in zip(part["dataset"], part["variant"])]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(order)), 4.0))
    sns.stripplot(data=part, x="cell", y="auc_difference", order=labels, color="#4477aa", alpha=0.6, size=4,
                  jitter=0.2, ax=ax)
    med = part.groupby("cell")["auc_difference"].median()
    ax.scatter(np.arange(len(order)), [med.get(lab, np.nan) for lab in labels], marker="_", s=500, color="black",
               zorder=3, label="median over the splits")
    ax.axhline(0.0, ls=":", c="grey")
    n = part["split"].nunique()
    ax.set(xlabel="", ylabel=f"AUC difference, {level} level\n(ImageNet − random weights)",
           title=f"What ImageNet pretraining buys EfficientNet-Lite0 on {n} resplits")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
