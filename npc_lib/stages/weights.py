"""Stage ``weights``: which weights each backbone of the run starts from.

Reads: profile keys ``backbones``, ``weights`` and ``weights_fallback``.
Writes: ``weights.json``: per backbone, the weights resolved (ImageNet bundled, cached or downloaded; a file;
random initialisation, and why).
Serves: every page's data banner (which backbones were randomly initialised), from the start of the run and the
same whichever stages have finished.
"""
from __future__ import annotations

from npc_lib.atomic import write_json
from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext

WEIGHTS_KEYS = ("backbones", "weights", "weights_fallback")


def record_weights(ctx: RunContext) -> list:
    """Resolve every backbone's weights (as the feature passes will) and write them down."""
    from npc_lib.learn.models import preflight_weights
    write_json(ctx.layout.weights_record, preflight_weights(ctx.profile))
    return [ctx.layout.weights_record]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("weights", record_weights, reads=WEIGHTS_KEYS, serves="the data banner of every page")]
