"""Figures of the results: Fig. 3 (ROC per dataset and variant, with the reference curves), Fig. 4
(TNM), Figs 5 and 8 (training curves), one run's history, calibration, decision curves, the
hybrid model's ROC and the DeLong matrix."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from npc_lib.show.plots.base import (BACKBONE_COLOURS, DATASET_ORDER, REFERENCE_STYLES, panel_order, roc_curve_on,
                                     roc_frame, roc_of_run)
from npc_lib.vocabulary import variant_names

def fig3_roc(runs: dict, level: str = "image", references: dict | None = None):
    """ROC per dataset × variant; ``runs`` maps (dataset, variant, backbone) → predictions and
    ``references`` maps a name of ``REFERENCE_STYLES`` → {(dataset, variant) → pseudo-run}.

    Parameters
    ----------
    runs : (dataset, variant, backbone) -> predictions (one row per image)
    level : ``image`` or ``patient`` (mean probability per patient)
    references : name in ``REFERENCE_STYLES`` -> {(dataset, variant): pseudo-run predictions} or None

    Returns
    -------
    matplotlib Figure, one panel per dataset × variant of ``runs`` (the paper's 4 × 2).
    """
    datasets, variants = panel_order(runs)
    fig, axes = plt.subplots(len(datasets), len(variants), figsize=(4.5 * len(variants), 4.25 * len(datasets)),
                             squeeze=False)
    for c, variant in enumerate(variants):
        for r, dataset in enumerate(datasets):
            ax = axes[r, c]
            for (d, v, b), pred in sorted(runs.items()):
                if (d, v) == (dataset, variant):
                    roc_of_run(ax, pred, level, b)
            for name, pseudo in (references or {}).items():
                if pseudo and (dataset, variant) in pseudo:
                    roc_of_run(ax, pseudo[(dataset, variant)], level, name, **REFERENCE_STYLES[name])
            roc_frame(ax, f"{dataset} — {variant}")
    fig.suptitle(f"Test ROC curves by dataset and backbone ({level} level)")
    fig.tight_layout()
    return fig


def fig4_tnm_roc(y, stage_iv, ordinal_stage=None):
    """ROC of the TNM baseline: stage IV vs I–III (a single operating point) and ordinal stage.

    Parameters
    ----------
    y : DM labels (n,)
    stage_iv : 0/1 stage IV indicator (n,)
    ordinal_stage : overall stage 1–4 (n,), optional

    Returns
    -------
    matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    roc_curve_on(ax, y, stage_iv, "stage IV vs I–III", "#444444", lw=2)
    if ordinal_stage is not None:
        roc_curve_on(ax, y, ordinal_stage, "ordinal stage I–IV", "#999999")
    roc_frame(ax, "TNM stage on the test patients")
    fig.tight_layout()
    return fig


def fig_hybrid_roc(test: pd.DataFrame, title: str):
    """ROC of clinical-only, image-only and hybrid scores on the test patients.

    Parameters
    ----------
    test : the test patients' ``label`` and one score column per model (``hybrid_models``'s ``test``)
    title : which runs

    Returns
    -------
    matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for col, colour in (("clinical", "#999999"), ("image", "#1f78b4"), ("hybrid", "#e31a1c")):
        roc_curve_on(ax, test["label"], test[col], col, colour, lw=2 if col == "hybrid" else 1.6)
    roc_frame(ax, f"Hybrid model, {title}")
    fig.tight_layout()
    return fig


def fig_curves(histories: dict, metric: str = "accuracy"):
    """Figs 5 (accuracy) and 8 (loss): train and test per epoch, one panel per dataset × variant.

    Parameters
    ----------
    histories : (dataset, variant, backbone) -> per-epoch history
    metric : ``accuracy`` or ``loss``

    Returns
    -------
    matplotlib Figure, one panel per dataset × variant.
    """
    datasets, variants = panel_order(histories)
    fig, axes = plt.subplots(len(datasets), len(variants), figsize=(4.5 * len(variants), 3.5 * len(datasets)),
                             sharex=True, squeeze=False)
    for c, variant in enumerate(variants):
        for r, dataset in enumerate(datasets):
            ax = axes[r, c]
            for (d, v, b), h in sorted(histories.items()):
                if (d, v) != (dataset, variant):
                    continue
                col = BACKBONE_COLOURS.get(b)
                ax.plot(h["epoch"], h[f"train_{metric}"], color=col, lw=1.2, label=f"{b} train")
                ax.plot(h["epoch"], h[f"test_{metric}"], color=col, lw=1.2, ls="--", label=f"{b} test")
            ax.set(title=f"{dataset} — {variant}", xlabel="epoch", ylabel=metric)
            if r == 0 and c == 0:
                ax.legend(fontsize=6, frameon=False, ncol=2)
    fig.suptitle(f"{metric.capitalize()} per epoch (solid: train, dashed: test)")
    fig.tight_layout()
    return fig


def fig_calibration(curves: dict):
    """Reliability diagram; ``curves`` maps label → DataFrame(mean_predicted, observed_fraction).

    Parameters
    ----------
    curves : label -> DataFrame(``mean_predicted, observed_fraction``)

    Returns
    -------
    matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    for label, cur in curves.items():
        ax.plot(cur["mean_predicted"], cur["observed_fraction"], marker="o", ms=3, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed DM fraction",
           title="Calibration (test patients)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def fig_decision_curve(curves: dict):
    """Net benefit vs threshold; ``curves`` maps label → net_benefit() frame.

    Parameters
    ----------
    curves : label -> :func:`~npc_lib.analysis.metrics.net_benefit` frame

    Returns
    -------
    matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    any_curve = None
    for label, nb in curves.items():
        ax.plot(nb["threshold"], nb["model"], label=label)
        any_curve = nb
    if any_curve is not None:
        ax.plot(any_curve["threshold"], any_curve["treat_all"], c="grey", ls="--", label="treat all")
        ax.axhline(0, c="black", lw=0.8, label="treat none")
        top = max(0.05, float(np.nanmax([nb["model"].max() for nb in curves.values()] +
                                        [any_curve["treat_all"].max()])))
        ax.set_ylim(-0.05, top * 1.1)
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curves (test patients)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig




def fig_history(history: pd.DataFrame, title: str):
    """Loss and accuracy per epoch on train and test for one run.

    Parameters
    ----------
    history : per-epoch ``epoch, train_loss, train_accuracy, test_loss, test_accuracy``
    title : the panels' title prefix

    Returns
    -------
    matplotlib Figure, loss and accuracy panels.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(history["epoch"], history[f"train_{metric}"], label="train", c="#1f78b4")
        ax.plot(history["epoch"], history[f"test_{metric}"], label="test", c="#e31a1c", ls="--")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def fig_dataset_histories(histories: dict, dataset: str):
    """Test and training loss per epoch of one dataset's models: one panel per region variant, one colour per
    backbone (solid: train, dashed: test).

    Parameters
    ----------
    histories : (variant, backbone) -> per-epoch ``epoch, train_loss, test_loss``
    dataset : the dataset, for the title

    Returns
    -------
    matplotlib Figure.
    """
    variants = list(dict.fromkeys(v for v, _ in histories)) or ["(none)"]
    fig, axes = plt.subplots(1, len(variants), figsize=(4.6 * len(variants), 3.4), squeeze=False, sharey=True)
    for ax, v in zip(axes[0], variants):
        for (vv, b), h in histories.items():
            if vv != v:
                continue
            colour = BACKBONE_COLOURS.get(b)
            ax.plot(h["epoch"], h["train_loss"], c=colour, lw=1.3, label=f"{b} train")
            ax.plot(h["epoch"], h["test_loss"], c=colour, lw=1.3, ls="--", label=f"{b} test")
        ax.set(xlabel="epoch", ylabel="loss", title=f"{dataset}, {v}")
    axes[0][-1].legend(frameon=False, fontsize=7, loc="upper right", ncol=1)
    fig.tight_layout()
    return fig


def fig_delong_matrix(matrix: pd.DataFrame):
    """Heat map of the patient-level paired DeLong p-values between runs (seaborn).

    Parameters
    ----------
    matrix : symmetric p-values, index and columns ``dataset / variant / backbone``

    Returns
    -------
    matplotlib Figure.
    """
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * n + 3), max(5, 0.28 * n + 2)))
    sns.heatmap(matrix.astype(float), ax=ax, cmap="viridis_r", vmin=0, vmax=1, square=True, linewidths=0.2,
                cbar_kws={"shrink": 0.6, "label": "DeLong p"}, xticklabels=True, yticklabels=True)
    ax.tick_params(labelsize=6)
    ax.set(xlabel="", ylabel="", title="Paired DeLong p-values (patient level, common test patients)")
    fig.tight_layout()
    return fig


def fig_pretraining(summary: pd.DataFrame):
    """What ImageNet pretraining buys: per dataset × variant, Lite0 with ImageNet and with random
    weights (patient-level AUC, 95 % CI), the paper's four backbones' range, and the references.

    Parameters
    ----------
    summary : :func:`npc_lib.analysis.ablation.pretraining_summary`

    Returns
    -------
    matplotlib Figure.
    """
    rows = summary.assign(_d=summary["dataset"].map({d: i for i, d in enumerate(DATASET_ORDER)}),
                          _v=summary["variant"].map({v: i for i, v in enumerate(variant_names())}))
    rows = rows.sort_values(["_d", "_v"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.4, 0.42 * len(rows) + 1.8))
    y = np.arange(len(rows))[::-1]
    ax.hlines(y, rows["paper_four_min"], rows["paper_four_max"], color="#bbbbbb", lw=6, label="paper's four (range)")
    for col, dy, colour, label in (("imagenet", 0.14, BACKBONE_COLOURS["efficientnet-lite0"], "Lite0, ImageNet"),
                                   ("random", -0.14, "#444444", "Lite0, random")):
        ax.errorbar(rows[f"auc_{col}"], y + dy, xerr=[rows[f"auc_{col}"] - rows[f"auc_{col}_low"],
                                                    rows[f"auc_{col}_high"] - rows[f"auc_{col}"]],
                    fmt="o", ms=4, color=colour, lw=1, capsize=2, label=label)
    ax.scatter(rows["planted_auc"], y, marker="|", s=160, color="black", label="planted-risk reference", zorder=3)
    ax.scatter(rows["pixel_auc"], y, marker="x", s=30, color="#777777", label="pixel reference", zorder=3)
    ax.axvline(0.5, ls=":", c="grey")
    ax.set_yticks(y, [f"{d}, {v}" for d, v in zip(rows["dataset"], rows["variant"])])
    ax.set(xlim=(0, 1), xlabel="test AUC, patient level (95 % CI)", title="What ImageNet pretraining buys")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1 - 0.6 / len(rows)), ncol=3)  # below the axes
    fig.tight_layout()
    return fig
