"""Stage ``pretraining``: what ImageNet pretraining buys, EfficientNet-Lite0 from random weights.

Reads: the image store and split; profile keys ``backbones`` (Lite0 must be one), ``weights`` (it must be
pretrained), ``train``, ``datasets``, ``variants``, ``geometry``.
Writes: the random Lite0's features (``cache/features-<store>/efficientnet-lite0-...-random-seed<k>/``) and its
heads in ``ablation/models/``, one per dataset × variant, fitted exactly as the pretrained Lite0's.
Serves: the book's "what ImageNet pretraining buys" (results page) and the pretraining pairs across resplits.
"""
from __future__ import annotations

from npc_lib.data.prepared import open_prepared
from npc_lib.ablations import ablation_profile, lite0_tap_block
from npc_lib.stage import Stage
from npc_lib.learn.features import extract_features
from npc_lib.learn.study import grid
from npc_lib.learn.train import train_finetune, train_heads
from npc_lib.stages.context import RunContext
from npc_lib.vocabulary import LITE0

PRETRAINING_KEYS = ("backbones", "weights", "weights_fallback", "train", "datasets", "variants", "geometry", "cohort",
                    "split", "model_choice", "precision", "finetune_ablation")


def fit_random_lite0(ctx: RunContext) -> list:
    """Lite0's models from random weights on every dataset × variant, in the profile's own mode."""
    p = ablation_profile(ctx.profile)
    prep = open_prepared(ctx.layout)
    cells = [(d, v) for d, v, _ in grid(p)]
    runs = [ctx.layout.ablation.model(d, v, LITE0) for d, v in cells]
    if not ctx.head_mode:
        for (d, v), run in zip(cells, runs):
            train_finetune(prep.store, d, v, LITE0, p, prep.split, run, progress=ctx.progress)
        return [r.root for r in runs]
    feats = extract_features(prep.store, LITE0, p, ctx.layout.cache, reuse=False,
                             tap_block=lite0_tap_block(ctx.profile))  # the fine-tuning ablation's activations
    train_heads(prep.store, feats, [(d, v, r) for (d, v), r in zip(cells, runs)], p, prep.split)
    return [r.root for r in runs] + sorted({f.path.parent for f in feats.values()})


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if ablation_profile(ctx.profile) is None:
        return []
    return [Stage("pretraining", fit_random_lite0, needs=("store",), reads=PRETRAINING_KEYS, heavy=True,
                  serves="what ImageNet pretraining buys (Lite0 from random weights)")]
