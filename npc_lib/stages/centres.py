"""Stages ``centre:<name>`` and ``centre:<name>:tuning``: the second synthetic centre the models are validated on.

Reads: the profile's ``external`` block (centre, patients, matrix, seed; tuning_patients, tuning_seed) and
``cohort.slices``.
Writes: ``centres/<name>/`` (the evaluation draw: the patients the external results are reported on) and
``centres/<name>-tuning/`` (another draw of the same centre, other patients and seed: the harmonisation is chosen
on it); cohort folders like the first centre's, with another scanner, protocol and case mix and the same planted
biology (the shifts measured in each ``generation_report.json``).
Serves: the book's "Does it travel?" chapter (external validation; synthetic cohorts only).
"""
from __future__ import annotations

from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext
from npc_lib.synth.generate import SynthConfig, ensure_synthetic

CENTRE_KEYS = ("external.centre", "external.patients", "external.matrix", "external.seed", "cohort.slices")
TUNING_KEYS = ("external.centre", "external.tuning_patients", "external.matrix", "external.tuning_seed",
               "cohort.slices")


def make_centre(ctx: RunContext, draw: str) -> list:
    """Generate one draw of the external centre anew (``evaluation`` or ``tuning``)."""
    ext = ctx.profile.external
    patients, seed = (ext.patients, ext.seed) if draw == "evaluation" else (ext.tuning_patients, ext.tuning_seed)
    cfg = SynthConfig.for_centre(ext.centre, patients=patients, matrix=ext.matrix, slices=ctx.profile.cohort.slices,
                                 seed=seed)
    folder = ctx.layout.centre_cohort(ext.centre) if draw == "evaluation" else ctx.layout.tuning_cohort(ext.centre)
    return [ensure_synthetic(folder, cfg, progress=ctx.progress, fresh=True)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    ext = ctx.profile.external
    if not ctx.synthetic or ext is None:
        return []
    # generated once the first centre's cohort is (it needs nothing of it: the first centre comes first on the
    # cores, its stages are on the critical path)
    after = ("cohort",) if "cohort" in known else ()
    out = [Stage(f"centre:{ext.centre}", make_centre, ("evaluation",), reads=CENTRE_KEYS, after=after,
                 serves="the second centre (external validation): the evaluation draw")]
    if ext.tuning_patients:
        out.append(Stage(f"centre:{ext.centre}:tuning", make_centre, ("tuning",), reads=TUNING_KEYS, after=after,
                         serves="the second centre's tuning draw (the harmonisation is chosen on it)"))
    return out
