"""Stage ``pixel_features``: the classical intensity and texture features of every stored image.

Reads: the image store (stage ``store``).
Writes: ``cache/pixel-features-<store>.npz`` (22 features per image and variant, scikit-image).
Serves: the pixel reference model (logistic regression on these, fitted on the training images), which shows
on the synthetic cohort that the planted signal can be recovered from the rectangles' pixels; the negative
control and the external validation score it too.
"""
from __future__ import annotations

from npc_lib.analysis.references import store_features
from npc_lib.data.prepared import open_prepared
from npc_lib.data.rois import Geometry
from npc_lib.stage import Stage
from npc_lib.layout import pixel_features_file
from npc_lib.stages.context import RunContext


def compute_pixel_features(ctx: RunContext) -> list:
    """The pixel features of the run's image store, computed anew."""
    store = open_prepared(ctx.layout).store
    path = pixel_features_file(ctx.layout.cache, store.manifest.get("pixels_of", store.fingerprint))
    path.unlink(missing_ok=True)
    store_features(store, Geometry(**store.manifest["geometry"]), ctx.layout.cache)
    return [path]


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("pixel_features", compute_pixel_features, needs=("store",), serves="the pixel reference model")]
