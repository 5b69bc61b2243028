"""Stage ``features:<backbone>``: one frozen backbone's features of every stored image (head mode).

Reads: the image store (stage ``store``); profile keys ``geometry.input_size``, ``weights``, ``weights_fallback``,
``train.seed`` (a random backbone's initialisation), ``variants`` and ``precision``.
Writes: ``cache/features-<store>/<backbone>-<size>px-<weights>/`` (one array per variant, rows aligned with the
store; a random backbone's weights for Grad-CAM; for EfficientNet-Lite0 also the activations below the blocks
the fine-tuning ablation trains).
Serves: the paper's §2.3 (the four backbones and EfficientNet-Lite0, frozen): every head of Table 2 is fitted
on these.
"""
from __future__ import annotations

from npc_lib.data.prepared import open_prepared
from npc_lib.ablations import lite0_tap_block
from npc_lib.stage import Stage
from npc_lib.learn.features import extract_features
from npc_lib.stages.context import RunContext
from npc_lib.vocabulary import LITE0

FEATURE_KEYS = ("geometry", "weights", "weights_fallback", "train.seed", "variants", "precision")
LITE0_KEYS = FEATURE_KEYS + ("finetune_ablation", "backbones", "train.mode", "datasets")  # where activations are kept


def compute_features(ctx: RunContext, backbone: str) -> list:
    """The backbone's features of the run's image store, computed anew."""
    prep = open_prepared(ctx.layout)
    tap = lite0_tap_block(ctx.profile) if backbone == LITE0 else None  # the fine-tuning ablation's activations
    feats = extract_features(prep.store, backbone, ctx.profile, ctx.layout.cache, reuse=False, tap_block=tap)
    return sorted({f.path.parent for f in feats.values()})


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.head_mode:
        return []
    return [Stage(f"features:{b}", compute_features, (b,), needs=("store",),
                  reads=LITE0_KEYS if b == LITE0 else FEATURE_KEYS, heavy=True,
                  serves="§2.3 frozen backbones (head mode)") for b in ctx.profile.backbones]
