"""The paper's figures as functions that return matplotlib figures (saved by ``save``).

Fig 3: ROC curves per dataset, four backbones (one panel per dataset × variant), with the
reference curves (planted-risk reference on synthetic cohorts, pixel reference model) drawn
on the same test images or patients. Fig 4: ROC of the TNM baseline.
Figs 5 and 8: accuracy and loss per epoch on train and test. Plus calibration and decision curves.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from npc_lib.atomic import atomic_path  # noqa: E402
from npc_lib.vocabulary import VARIANTS  # noqa: E402

# One theme for every statistical figure of the project: seaborn's whitegrid at a size that stays
# legible when a figure is shown at the book's text width (about 750 px).
THEME = dict(context="notebook", style="whitegrid", font_scale=0.95,
             rc={"axes.titlesize": 11, "legend.fontsize": 8, "legend.frameon": False, "figure.dpi": 100})


def use_theme() -> None:
    """Apply the project theme (done on import; call again after changing matplotlib's settings)."""
    sns.set_theme(**THEME)


use_theme()

BACKBONE_COLOURS = {"efficientnet-b0": "#1b9e77", "inception-resnet-v2": "#d95f02", "resnet50": "#7570b3",
                    "xception": "#e7298a"}
DATASET_ORDER = ["NPC-CMLN", "NPC", "CMLN", "Max tumour"]
VARIANT_ORDER = ["intratumour", "intra-peritumour"]
# reference pseudo-runs drawn in Fig. 3: name -> line style
REFERENCE_STYLES = {"planted risk": dict(color="black", ls="--", lw=1.4),
                    "pixel reference": dict(color="#777777", ls="-.", lw=1.4)}


def save(fig, path_without_suffix: str | Path) -> list[Path]:
    """Write PNG and SVG next to each other (atomically); returns the paths."""
    base = Path(path_without_suffix)
    out = []
    for suffix in (".png", ".svg"):
        target = base.with_suffix(suffix)
        with atomic_path(target, suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix[1:])
        out.append(target)
    plt.close(fig)
    return out


def _roc(ax, y, p, label, colour=None, lw=1.6):
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, color=colour, lw=lw, label=f"{label} (AUC {roc_auc_score(y, p):.2f})")


def roc_of_run(ax, pred: pd.DataFrame, level: str, label: str, **style) -> None:
    """Draw one run's test ROC at image or patient level (skipped when the test split has one class)."""
    from npc_lib.analysis.metrics import patient_scores
    test = pred[pred["split"] == "test"]
    if level == "patient":
        test = patient_scores(test)
    if test["label"].nunique() == 2 and test["probability"].notna().all():
        if style:
            fpr, tpr, _ = roc_curve(test["label"], test["probability"])
            ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(test['label'], test['probability']):.2f})",
                    **style)
        else:
            _roc(ax, test["label"], test["probability"], label, BACKBONE_COLOURS.get(label))


def roc_frame(ax, title):
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8, frameon=False)


def fig3_roc(runs: dict, level: str = "image", references: dict | None = None):
    """ROC per dataset × variant; ``runs`` maps (dataset, variant, backbone) → predictions and
    ``references`` maps a name of ``REFERENCE_STYLES`` → {(dataset, variant) → pseudo-run}."""
    fig, axes = plt.subplots(4, 2, figsize=(9, 17))
    for c, variant in enumerate(VARIANT_ORDER):
        for r, dataset in enumerate(DATASET_ORDER):
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
    """ROC of the TNM baseline: stage IV vs I–III (a single operating point) and ordinal stage."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    _roc(ax, y, stage_iv, "stage IV vs I–III", "#444444", lw=2)
    if ordinal_stage is not None:
        _roc(ax, y, ordinal_stage, "ordinal stage I–IV", "#999999")
    roc_frame(ax, "TNM stage on the test patients")
    fig.tight_layout()
    return fig


def fig_hybrid_roc(test: pd.DataFrame, title: str):
    """ROC of clinical-only, image-only and hybrid scores on the test patients."""
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for col, colour in (("clinical", "#999999"), ("image", "#1f78b4"), ("hybrid", "#e31a1c")):
        _roc(ax, test["label"], test[col], col, colour, lw=2 if col == "hybrid" else 1.6)
    roc_frame(ax, f"Hybrid model, {title}")
    fig.tight_layout()
    return fig


def fig_curves(histories: dict, metric: str = "accuracy"):
    """Figs 5 (accuracy) and 8 (loss): train and test per epoch, one panel per dataset × variant."""
    fig, axes = plt.subplots(4, 2, figsize=(9, 14), sharex=True)
    for c, variant in enumerate(VARIANT_ORDER):
        for r, dataset in enumerate(DATASET_ORDER):
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
    """Reliability diagram; ``curves`` maps label → DataFrame(mean_predicted, observed_fraction)."""
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
    """Net benefit vs threshold; ``curves`` maps label → net_benefit() frame."""
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




def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float image: the grey ROI image under the CAM in viridis (purple low → yellow high)."""
    grey = np.asarray(image, np.float32)
    grey = grey / 255.0 if grey.max() > 1 else grey
    heat = colormaps["viridis"](np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * grey[..., None] + alpha * heat, 0, 1)


def fig_gradcam_grid(example: dict, title: str, columns: int = 6, alpha: float = 0.45):
    """Figs 6/7: ROI images (lesion outlined) and each backbone's Grad-CAM overlay (viridis)."""
    images, masks, cams = example["images"], example["masks"], example["cams"]
    order = np.argsort(-example["labels"], kind="stable")[:columns]  # DM images first
    names = list(cams)
    fig, axes = plt.subplots(1 + len(names), len(order), figsize=(1.9 * len(order), 1.95 * (1 + len(names))),
                             squeeze=False)
    for c, i in enumerate(order):
        axes[0, c].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        if masks[i].any():
            axes[0, c].contour(masks[i], levels=[0.5], colors="#ff4040", linewidths=0.8)
        axes[0, c].set_title(f"{example['regions'][i].upper()}, {'DM' if example['labels'][i] else 'no DM'}",
                             fontsize=8)
        for r, name in enumerate(names, start=1):
            if np.isfinite(cams[name][i]).all():
                axes[r, c].imshow(overlay(images[i], cams[name][i], alpha))
            else:
                axes[r, c].imshow(images[i], cmap="gray", vmin=0, vmax=255, alpha=0.35)
                axes[r, c].text(0.5, 0.5, "1×1 conv map:\nno CAM", ha="center", va="center", fontsize=7,
                                transform=axes[r, c].transAxes)
    for r, name in enumerate(["ROI image"] + names):
        axes[r, 0].set_ylabel(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fig_roi_examples(store, per_region: int = 3, seed: int = 0):
    """Stored images side by side, intratumour (top row) vs intra-peritumour (bottom row), for
    ``per_region`` randomly picked (``seed``) images of each region (NPC, then CMLN).

    Parameters
    ----------
    store : an :class:`~npc_lib.data.cache.ImageStore` (images (n, size, size) per variant)
    """
    idx = store.index
    rng = np.random.default_rng(seed)
    pick = np.sort(np.concatenate([rng.choice(idx.index[idx.region == r], per_region, replace=False)
                                   for r in ("npc", "cmln") if (idx.region == r).sum() >= per_region]))
    rows = {v: np.asarray(store.images(v)[pick]) for v in VARIANTS}
    n = len(pick)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.1), squeeze=False)
    for i, image_id in enumerate(pick):
        for r, variant in enumerate(VARIANTS):
            axes[r, i].imshow(rows[variant][i], cmap="gray", vmin=0, vmax=255)
            axes[r, i].set_xticks([])
            axes[r, i].set_yticks([])
            if i == 0:
                axes[r, i].set_ylabel(variant, fontsize=8)
        axes[0, i].set_title(f"{idx.region[image_id].upper()}, {'DM' if idx.label[image_id] else 'no DM'}", fontsize=8)
    fig.tight_layout()
    return fig


def fig_history(history: pd.DataFrame, title: str):
    """Loss and accuracy per epoch on train and test for one run."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(history["epoch"], history[f"train_{metric}"], label="train", c="#1f78b4")
        ax.plot(history["epoch"], history[f"test_{metric}"], label="test", c="#e31a1c", ls="--")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def fig_delong_matrix(matrix: pd.DataFrame):
    """Heat map of the patient-level paired DeLong p-values between runs (seaborn)."""
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * n + 3), max(5, 0.28 * n + 2)))
    sns.heatmap(matrix.astype(float), ax=ax, cmap="viridis_r", vmin=0, vmax=1, square=True, linewidths=0.2,
                cbar_kws={"shrink": 0.6, "label": "DeLong p"}, xticklabels=True, yticklabels=True)
    ax.tick_params(labelsize=6)
    ax.set(xlabel="", ylabel="", title="Paired DeLong p-values (patient level, common test patients)")
    fig.tight_layout()
    return fig


def fig_cohort(clinical: pd.DataFrame, split: pd.Series):
    """Table 1 companion: age and overall stage by DM status, in the training and test sets."""
    c = clinical.assign(split=clinical["patient_id"].map(split).str.capitalize(),
                        outcome=np.where(clinical["dm"] == 1, "DM", "No DM"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    sns.boxplot(data=c, x="split", y="age", hue="outcome", order=["Train", "Test"], hue_order=["DM", "No DM"],
                palette=["#d95f02", "#7570b3"], ax=axes[0], width=0.6, fliersize=2)
    axes[0].set(xlabel="", ylabel="age (years)", title="Age")
    share = (c.groupby(["split", "outcome"])["overall_stage"].value_counts(normalize=True).rename("share")
             .reset_index())
    share["group"] = share["split"] + ", " + share["outcome"]
    order = [f"{s}, {o}" for s in ("Train", "Test") for o in ("DM", "No DM")]
    sns.barplot(data=share, x="group", y="share", hue="overall_stage", order=order,
                hue_order=["I", "II", "III", "IV"], palette="viridis", ax=axes[1])
    axes[1].set(xlabel="", ylabel="share of patients", title="Overall stage", ylim=(0, share["share"].max() * 1.3))
    axes[1].tick_params(axis="x", labelsize=8)
    axes[1].legend(title="stage", ncol=4, loc="upper center", fontsize=8, title_fontsize=8)
    axes[0].set_ylim(c["age"].min() - 3, c["age"].max() + 14)
    axes[0].legend(title="", ncol=2, loc="upper center")
    fig.tight_layout()
    return fig
