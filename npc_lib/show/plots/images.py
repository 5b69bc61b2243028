"""Figures of images: stored ROI examples, Grad-CAM grids (Figs 6 and 7) and their overlays."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import colormaps
import numpy as np

from npc_lib.vocabulary import VARIANTS

def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB float image: the grey ROI image under the CAM in viridis (purple low → yellow high)."""
    grey = np.asarray(image, np.float32)
    grey = grey / 255.0 if grey.max() > 1 else grey
    heat = colormaps["viridis"](np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * grey[..., None] + alpha * heat, 0, 1)


def fig_gradcam_grid(example: dict, title: str, columns: int = 6, alpha: float = 0.45):
    """Figs 6/7: ROI images (lesion outlined) and each backbone's Grad-CAM overlay (viridis).

    Parameters
    ----------
    example : one (dataset, variant) entry of ``cam_study(...)["examples"]``: images (n, s, s),
        masks (n, s, s), labels (n,), cams {backbone: (n, s, s)}
    title : the figure title
    columns : images shown
    alpha : overlay opacity

    Returns
    -------
    matplotlib Figure, one row of ROI images and one row per backbone.
    """
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
    per_region : images per region
    seed : choice seed

    Returns
    -------
    matplotlib Figure, 2 rows × (2 ``per_region``) columns.
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
