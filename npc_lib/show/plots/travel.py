"""The "Does it travel?" figures: the two centres side by side, and internal against external AUC."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from npc_lib.show.plots.base import DATASET_ORDER, VARIANT_ORDER

CENTRE_COLOURS = ("#4477aa", "#cc6677")
SHOWN = {"CNN mean (paper's four)": "#333333", "efficientnet-lite0": "#e7298a", "pixel reference": "#66a61e",
         "planted risk": "#000000", "TNM stage": "#999999"}


def fig_centres(travel):
    """Top: one axial slice per centre (raw stored values, own grey scale), the ROI intensity histograms and the
    stage mix. Bottom: the largest node ROI as the models see it, per centre (and harmonised).

    Parameters
    ----------
    travel : :class:`npc_lib.analysis.travel.Travel`

    Returns
    -------
    matplotlib Figure.
    """
    names = list(travel.slices)
    crops = travel.crops
    fig = plt.figure(figsize=(9.6, 5.6))
    grid = fig.add_gridspec(2, 4)
    for i, (name, colour) in enumerate(zip(names, CENTRE_COLOURS)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(travel.slices[name], cmap="gray")
        ax.set_title(f"Centre {name}: one slice", fontsize=9, color=colour)
        ax.axis("off")
    ax = fig.add_subplot(grid[0, 2])
    for name, colour in zip(names, CENTRE_COLOURS):
        v = travel.histograms[name]
        ax.hist(v, bins=60, range=(0, np.percentile(np.concatenate(list(travel.histograms.values())), 99.5)),
                density=True, histtype="step", color=colour, lw=1.4, label=f"Centre {name}")
    ax.set(xlabel="stored value in the ROIs", ylabel="density", yticks=[])
    ax.set_title("ROI intensities (raw)", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[0, 3])
    stages = ["I", "II", "III", "IV"]
    c = travel.centres.set_index("centre")
    x = np.arange(len(stages))
    for j, (name, colour) in enumerate(zip(names, CENTRE_COLOURS)):
        if name in c.index:
            ax.bar(x + (j - 0.5) * 0.38, [c.loc[name, f"stage_{s}"] or 0 for s in stages], 0.38, color=colour,
                   label=f"Centre {name}")
    ax.set(xticks=x, xticklabels=stages, xlabel="overall stage", ylabel="share of patients")
    ax.set_title("Case mix", fontsize=9)
    ax.legend(fontsize=7)
    for i, (label, img) in enumerate(crops.items()):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def fig_internal_external(summary: pd.DataFrame):
    """Patient-level AUC on the training centre's test patients (open) and on every external patient (filled),
    per dataset × variant, for the paper's four backbones' mean, Lite0, the pixel and planted references and TNM.

    Parameters
    ----------
    summary : ``evaluation/external_summary.csv`` (:func:`npc_lib.analysis.external.external_summary`)

    Returns
    -------
    matplotlib Figure.
    """
    cells = [(d, v) for d in DATASET_ORDER for v in VARIANT_ORDER
             if ((summary["dataset"] == d) & (summary["variant"] == v)).any()]
    fig, ax = plt.subplots(figsize=(9.6, 4.2))
    width = 0.8 / len(SHOWN)
    for k, (what, colour) in enumerate(SHOWN.items()):
        rows = summary[summary["what"] == what].set_index(["dataset", "variant"])
        for i, cell in enumerate(cells):
            if cell not in rows.index:
                continue
            r = rows.loc[cell]
            x = i - 0.4 + (k + 0.5) * width
            ax.plot([x, x], [r["auc_internal"], r["auc_external"]], color=colour, lw=1)
            ax.plot(x, r["auc_internal"], "o", mfc="white", mec=colour, ms=5)
            ax.plot(x, r["auc_external"], "o", color=colour, ms=5, label=what if i == 0 else None)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([f"{d}\n{v}" for d, v in cells], fontsize=7)
    ax.set(ylabel="patient-level AUC", ylim=(0.25, 1.0))
    ax.set_title("Internal (open: centre A test patients) → external (filled: every centre B patient)", fontsize=9)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig
