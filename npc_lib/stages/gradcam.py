"""Stage ``gradcam``: where every model looks, measured.

Reads: every model, the image store and the cohort's masks (the same seeded test images for every backbone).
Writes: ``gradcam_table.csv`` (CAM-in-ROI fraction, area share, enrichment and the weight-randomisation
check per model), ``gradcam/cams.npz`` (the maps the explorer shows) and ``results/gradcam.pkl``.
Serves: the paper's Figs 6 and 7 and the book's measured reading of them (CAM-in-ROI).
"""
from __future__ import annotations

from npc_lib.analysis.cam_study import cam_study, save_cam_examples
from npc_lib.analysis.saved import CAM_IMAGES
from npc_lib.stage import Stage
from npc_lib.results import save_result
from npc_lib.stages.context import RunContext


def explain(ctx: RunContext) -> list:
    """Grad-CAM of every model on the same test images, and the explorer's maps."""
    res = cam_study(ctx.layout.root, ctx.cohort, n_images=CAM_IMAGES, progress=False)
    save_cam_examples(res["examples"], ctx.layout.gradcam_examples)
    return [ctx.layout.gradcam_table, ctx.layout.gradcam_examples, save_result(ctx.layout.result("gradcam"), res)]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("gradcam", explain, needs=tuple(sorted(k for k in known if k.startswith("models:"))),
                  heavy=True, isolated=True, serves="Figs 6 and 7: Grad-CAM, and CAM-in-ROI")]
