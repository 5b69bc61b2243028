"""Stage ``clock``: time to DM.

Reads: every model's test predictions and out-of-fold training scores, the models chosen on training data
(stage ``evaluation``), the clinical table's ``dm_months`` and ``dm_event`` and, on a synthetic cohort, the
planted risk and timing scores.
Writes: ``evaluation/survival.csv`` (Harrell's C overall and among DM patients, Cox hazard ratios adjusted for
stage, Kaplan–Meier risk groups) and ``results/clock.pkl``.
Serves: the book's "clock" chapter (beyond the paper: the paper's outcome is binary).
"""
from __future__ import annotations

from npc_lib.analysis.beyond import clock_study
from npc_lib.stage import Stage
from npc_lib.results import save_result
from npc_lib.stages.context import RunContext

C_INDEX_BOOTSTRAP = 200  # resamples of each C-index interval


def time_to_dm(ctx: RunContext) -> list:
    """Score every model, TNM stage and the references for time to DM."""
    res = clock_study(ctx.layout, ctx.cohort, n_boot=C_INDEX_BOOTSTRAP)
    survival = [ctx.layout.table("survival")] if res["survival"] is not None else []
    return survival + [save_result(ctx.layout.result("clock"), res)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("clock", time_to_dm, needs=("evaluation",), serves="the clock chapter: time to DM")]
