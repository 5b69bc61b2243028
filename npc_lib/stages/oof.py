"""Stage ``oof:<backbone>``: out-of-fold scores of the training patients (head mode).

Reads: the backbone's models (stage ``models:<backbone>``) and features.
Writes: ``models/<slug>/oof_scores.parquet`` (each training image scored by the head refitted without its
patient, 5 patient folds) for every model of the backbone.
Serves: everything chosen without the test patients: each model's threshold, the model chosen per dataset ×
region, the hybrid model's image score and the Cox models' training scores.
"""
from __future__ import annotations

from npc_lib.analysis.hybrid import write_oof_scores
from npc_lib.stage import Stage
from npc_lib.learn.study import grid
from npc_lib.stages.context import RunContext

OOF_FOLDS = 5


def fit_out_of_fold(ctx: RunContext, backbone: str) -> list:
    """Refit every model of the backbone on the training patients' folds, all heads in one stacked fit."""
    runs = [ctx.layout.model(d, v, backbone).root for d, v, _ in grid(ctx.profile, backbones=[backbone])]
    return write_oof_scores(ctx.layout, runs, OOF_FOLDS)


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.head_mode:
        return []
    return [Stage(f"oof:{b}", fit_out_of_fold, (b,), needs=(f"models:{b}",),
                  serves="thresholds and model choice on training data") for b in ctx.profile.backbones]
