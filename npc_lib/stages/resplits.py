"""Stages ``resplits:<backbone>`` and ``resplits``: how much a test AUC owes to the one split.

Every head is refitted on ``resplits`` further stratified patient splits (its cached features, the run's own
settings) and scored on each split's test patients; EfficientNet-Lite0 from random weights too, for the
pretraining pairs. Each backbone's refits are a stage of their own, so they spread over the workers.
Reads: the models, their features and the pretraining ablation's; profile keys ``resplits``, ``split``,
``train``; the run's own metrics (stage ``evaluation``) for the summary.
Writes: ``results/resplits-<arm>-<backbone>.parquet`` (the parts), then ``evaluation/resplits.csv``,
``resplit_summary.csv``, ``pretraining_resplits.csv`` and ``pretraining_resplit_summary.csv``, and
``results/resplits.pkl``.
Serves: the book's "split" chapter (beyond the paper); TNM stage on the same test patients of every split.
"""
from __future__ import annotations

import pandas as pd

from npc_lib.analysis.beyond import resplit_part, resplit_study
from npc_lib.atomic import atomic_path
from npc_lib.stage import Stage
from npc_lib.results import save_result
from npc_lib.stages.context import RunContext
from npc_lib.vocabulary import LITE0

RESPLIT_KEYS = ("resplits", "split", "train")


def arms(ctx: RunContext, backbone: str, known: frozenset) -> tuple[str, ...]:
    """The runs a backbone's resplit stage refits: the study's, and for Lite0 the random-weight ablation's."""
    return ("main", "random") if backbone == LITE0 and "pretraining" in known else ("main",)


def refit_backbone(ctx: RunContext, backbone: str, arms_: tuple[str, ...]) -> list:
    """The backbone's heads refitted on every resplit."""
    out = []
    for arm in arms_:
        part = resplit_part(ctx.layout, backbone, ctx.profile.resplits, arm, ctx.cohort)
        path = ctx.layout.resplit_part(backbone, arm)
        with atomic_path(path, suffix=".parquet") as tmp:
            part.to_parquet(tmp, index=False)
        out.append(path)
    return out


def merge(ctx: RunContext, parts: tuple[tuple[str, str], ...]) -> list:
    """Every part with TNM stage on the same splits: the tables and the notebook's object."""
    read = {(b, a): pd.read_parquet(ctx.layout.resplit_part(b, a)) for b, a in parts}
    res = resplit_study(ctx.layout, ctx.profile.resplits, [f for (_, a), f in read.items() if a == "main"],
                        [f for (_, a), f in read.items() if a == "random"], ctx.cohort)
    names = ("resplits", "resplit_summary", "pretraining_resplits", "pretraining_resplit_summary")
    return [ctx.layout.table(n) for n in names if ctx.layout.table(n).is_file()] + \
        [save_result(ctx.layout.result("resplits"), res)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.head_mode:  # fine-tuned runs are not resplit (that would retrain every backbone R times)
        return [Stage("resplits", merge, ((),), needs=("evaluation",), reads=RESPLIT_KEYS, serves="resplits")]
    serves = "the split chapter: repeated resplits"
    out, parts = [], []
    for b in ctx.profile.backbones:
        arms_ = arms(ctx, b, known)
        needs = (f"models:{b}", f"features:{b}", *(("pretraining",) if "random" in arms_ else ()))
        out.append(Stage(f"resplits:{b}", refit_backbone, (b, arms_), needs=needs, reads=RESPLIT_KEYS, serves=serves))
        parts += [(b, a) for a in arms_]
    out.append(Stage("resplits", merge, (tuple(parts),), needs=(*(s.name for s in out), "evaluation"),
                     reads=RESPLIT_KEYS, serves=serves))
    return out
