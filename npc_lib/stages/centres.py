"""Stage ``centre:<name>``: the second synthetic centre the models are validated on.

Reads: the profile's ``external`` block (centre, patients, matrix, seed) and ``cohort.slices``.
Writes: ``centres/<name>/``, a cohort folder like the first centre's: another scanner, protocol and case mix
with the same planted biology (its shifts measured in its ``generation_report.json``).
Serves: the book's "Does it travel?" chapter (external validation; synthetic cohorts only).
"""
from __future__ import annotations

from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext
from npc_lib.synth.generate import SynthConfig, ensure_synthetic

CENTRE_KEYS = ("external", "cohort.slices")


def make_centre(ctx: RunContext) -> list:
    """Generate the external centre's cohort anew."""
    ext = ctx.profile.external
    cfg = SynthConfig.for_centre(ext.centre, patients=ext.patients, matrix=ext.matrix, slices=ctx.profile.cohort.slices,
                                 seed=ext.seed)
    return [ensure_synthetic(ctx.layout.centre_cohort(ext.centre), cfg, progress=ctx.progress, fresh=True)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.synthetic or ctx.profile.external is None:
        return []
    return [Stage(f"centre:{ctx.profile.external.centre}", make_centre, reads=CENTRE_KEYS,
                  serves="the second centre (external validation)")]
