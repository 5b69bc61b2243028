"""Stage ``models:<backbone>``: one backbone's model for every dataset × variant of the profile.

Reads: the image store and split (stage ``store``); in head mode the backbone's features (stage
``features:<backbone>``); profile keys ``train``, ``datasets``, ``variants``, ``weights``, ``weights_fallback``,
``geometry``.
Writes: ``models/<dataset>__<variant>__<backbone>/`` (``run.json``, the head or network, the standardiser, the
training history and the predictions of every image).
Serves: the paper's §2.3 and Table 2: in head mode the heads of one backbone are fitted together in NumPy
(stacked), in finetune mode each network is trained end to end (TensorFlow, one at a time).
"""
from __future__ import annotations

from npc_lib.data.prepared import open_prepared
from npc_lib.stage import Stage
from npc_lib.learn.features import extract_features
from npc_lib.learn.study import grid
from npc_lib.learn.train import train_finetune, train_heads
from npc_lib.stages.context import RunContext

MODEL_KEYS = ("train", "datasets", "variants", "weights", "weights_fallback", "geometry", "cohort", "split")


def fit_models(ctx: RunContext, backbone: str) -> list:
    """Fit (anew) the backbone's models of every dataset × variant."""
    prep = open_prepared(ctx.layout)
    cells = [(d, v) for d, v, _ in grid(ctx.profile, backbones=[backbone])]
    runs = [ctx.layout.model(d, v, backbone) for d, v in cells]
    if ctx.head_mode:
        feats = extract_features(prep.store, backbone, ctx.profile, ctx.layout.cache)
        train_heads(prep.store, feats, [(d, v, r) for (d, v), r in zip(cells, runs)], ctx.profile, prep.split)
    else:
        for (d, v), run in zip(cells, runs):
            train_finetune(prep.store, d, v, backbone, ctx.profile, prep.split, run, progress=ctx.progress)
    return [r.root for r in runs]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage(f"models:{b}", fit_models, (b,), needs=("store", f"features:{b}") if ctx.head_mode else ("store",),
                  reads=MODEL_KEYS, heavy=not ctx.head_mode, serves="§2.3 and Table 2: the models")
            for b in ctx.profile.backbones]
