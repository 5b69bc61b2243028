"""Stage ``store``: the patient split and the ROI image store.

Reads: the cohort (stage ``cohort``); profile keys ``geometry``, ``split``, ``datasets`` and ``train.batch_size``
(a dataset whose split cannot be trained or scored stops the run here).
Writes: ``split.csv``, ``cohort.json`` and ``cache/images-<fingerprint>/`` (every ROI of the cohort, both
variants, as the networks see it).
Serves: the paper's §2.2 (the eight ROI datasets) and the split behind Table 1 and Table 2.
"""
from __future__ import annotations

from npc_lib.data.prepared import prepare
from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext


def build_store(ctx: RunContext) -> list:
    """Validate the cohort, fix the split and build the image store anew."""
    prep = prepare(ctx.profile, ctx.cohort, ctx.layout, progress=ctx.progress, rebuild=True)
    return [ctx.layout.split, ctx.layout.cohort_ref, prep.store.root]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("store", build_store, needs=("cohort",), reads=("geometry", "split", "datasets", "train.batch_size"),
                  serves="§2.2 the ROI datasets; the patient split")]
