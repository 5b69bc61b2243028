"""The figures' common ground: one seaborn theme, colours, ROC helpers and ``save``."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from sklearn.metrics import roc_auc_score, roc_curve

from npc_lib.analysis.metrics import patient_scores
from npc_lib.atomic import atomic_path
from npc_lib.vocabulary import DATASETS, VARIANTS, variant_names

# One theme for every statistical figure of the project: seaborn's whitegrid at a size that stays
# legible when a figure is shown at the book's text width (about 750 px).
THEME = dict(context="notebook", style="whitegrid", font_scale=0.95,
             rc={"axes.titlesize": 11, "legend.fontsize": 8, "legend.frameon": False, "figure.dpi": 100})


def use_theme() -> None:
    """Apply the project theme (done on import; call again after changing matplotlib's settings)."""
    sns.set_theme(**THEME)


use_theme()

BACKBONE_COLOURS = {"efficientnet-b0": "#1b9e77", "inception-resnet-v2": "#d95f02", "resnet50": "#7570b3",
                    "xception": "#e7298a", "efficientnet-lite0": "#66a61e"}
DATASET_ORDER = list(DATASETS)
VARIANT_ORDER = list(VARIANTS)


def panel_order(keys) -> tuple[list[str], list[str]]:
    """The datasets (rows) and variants (columns) that ``keys`` ((dataset, variant, ...) tuples) hold,
    in the vocabulary's order (a registered variant beyond the paper's two comes last); all of the
    paper's when ``keys`` is empty."""
    keys = list(keys)
    datasets = [d for d in DATASET_ORDER if any(k[0] == d for k in keys)] or DATASET_ORDER
    variants = [v for v in variant_names() if any(k[1] == v for k in keys)] or VARIANT_ORDER
    return datasets, variants
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


def roc_curve_on(ax, y, p, label, colour=None, lw=1.6):
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, color=colour, lw=lw, label=f"{label} (AUC {roc_auc_score(y, p):.2f})")


def roc_of_run(ax, pred: pd.DataFrame, level: str, label: str, **style) -> None:
    """Draw one run's test ROC at image or patient level (skipped when the test split has one class)."""
    test = pred[pred["split"] == "test"]
    if level == "patient":
        test = patient_scores(test)
    if test["label"].nunique() == 2 and test["probability"].notna().all():
        if style:
            fpr, tpr, _ = roc_curve(test["label"], test["probability"])
            ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(test['label'], test['probability']):.2f})",
                    **style)
        else:
            roc_curve_on(ax, test["label"], test["probability"], label, BACKBONE_COLOURS.get(label))


def roc_frame(ax, title):
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
