"""The main job's stages, in the order their modules are asked for them.

Adding a stage: write its module in this folder (what it reads, writes and serves; a ``stages(ctx, known)``
function returning its :class:`~npc_lib.graph.Stage` objects, ``known`` being the names of the stages made by
the modules before it) and add the module to ``MODULES``.
"""
from __future__ import annotations

from npc_lib.graph import Stage, check_graph
from npc_lib.stages import (book, centres, clock, cohort, evaluation, external, external_scores, features, finetune,
                            gradcam, harmonisation, models, negative_control, notebooks, oof, pixel_features,
                            pretraining, resplits, store, weights)
from npc_lib.stages.context import RunContext

MODULES = (weights, cohort, store, pixel_features, features, models, oof, pretraining, finetune, negative_control, centres,
           harmonisation, external_scores, external, evaluation, gradcam, resplits, clock, notebooks, book)


def plan(ctx: RunContext) -> list[Stage]:
    """Every stage of this run, each after the stages it needs."""
    out: list[Stage] = []
    for module in MODULES:
        out += module.stages(ctx, frozenset(s.name for s in out))
    return check_graph(out)


def preflight(ctx: RunContext) -> None:
    """Checks that take seconds and save a long run from failing late: every backbone's weights can be had (an
    offline machine whose profile refuses random weights stops here)."""
    from npc_lib.learn.models import preflight_weights
    preflight_weights(ctx.profile)
