"""``npc-study weights check``: do a backbone's weights behave like ImageNet weights?

The backbone is built with its 1000-class ImageNet top from the weights a run would use (Keras'
cache, a local file, or the bundled EfficientNet-Lite0 port) and classifies two of scikit-image's
sample photos: a cat (``chelsea``) must put a domestic-cat class in its top 5, a cup of coffee
(``coffee``) espresso, cup or coffee mug. A file without the top (``*_notop.h5``) gets a shape
check only. This is how a hospital checks a weights file it copied in by hand. Nothing is
downloaded here. Class names: ``resources/imagenet_classes.csv``, from the synset and lemma lists
shipped in the ``timm`` wheel (Apache-2.0).
"""
from __future__ import annotations

import csv
import functools
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from npc_lib.errors import NpcError
from npc_lib.learn.models import backbone, keras_cache_dir

# ImageNet class indices a photo must hit in its top 5
PHOTOS = {"chelsea": ("a cat", range(281, 286)),           # tabby, tiger cat, Persian, Siamese, Egyptian cat
          "coffee": ("espresso, cup or coffee mug", (967, 968, 504))}
TOP_SIZE = {"inception-resnet-v2": 299, "xception": 299}   # the others' ImageNet top expects 224


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order."""
    with resources.files("npc_lib.resources").joinpath("imagenet_classes.csv").open() as f:
        return tuple(r["label"] for r in csv.DictReader(f))


@dataclass
class Check:
    backbone: str
    weights: str                 # what was loaded (a path or "bundled ...")
    status: str                  # pass | fail | shapes-only | missing | mismatch
    message: str
    photos: dict = field(default_factory=dict)   # name -> {"top5": [(label, p)], "ok": bool|None}

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "shapes-only")


def _h5_layers(path: Path) -> dict[str, list[tuple]] | None:
    """Layer name -> weight shapes of a legacy Keras ``.h5`` weights file (None: another format)."""
    import h5py
    with h5py.File(path, "r") as f:
        if "layer_names" not in f.attrs:
            return None
        out = {}
        for name in (n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]):
            g = f[name]
            wn = [w.decode() if isinstance(w, bytes) else w for w in g.attrs.get("weight_names", [])]
            out[name] = [tuple(g[w].shape) for w in wn]
        return out


def _first_mismatch(model, file_layers: dict[str, list[tuple]]) -> str | None:
    for layer in model.layers:
        expected = [tuple(w.shape) for w in layer.weights]
        if not expected:
            continue
        if layer.name not in file_layers:
            return f"layer {layer.name} is not in the file"
        if file_layers[layer.name] != expected:
            return f"layer {layer.name}: file shapes {file_layers[layer.name]}, model expects {expected}"
    return None


def _locate(name: str, weights: str | None) -> tuple[str, Path | None, list[Path]]:
    """(label, file or None for the bundled port, places looked at)."""
    spec = backbone(name)
    if weights:
        return str(weights), Path(weights).expanduser(), [Path(weights).expanduser()]
    if spec.bundled:
        from npc_lib.learn.lite0 import ported_weights
        path, src = ported_weights()
        return f"bundled {src['package']} {src['version']} ({src['file']}, sha256 {src['sha256'][:12]}…)", path, [path]
    cache = keras_cache_dir()
    looked = [cache / spec.weights_file.replace("_notop", ""), cache / spec.weights_file]
    found = next((p for p in looked if p.is_file()), None)
    return str(found or looked[0]), found, looked


def classify(model, name: str, image: np.ndarray, size: int) -> list[tuple[str, float]]:
    """Top-5 ImageNet labels of an RGB image (uint8 or 0..255 floats, any size)."""
    from skimage.transform import resize
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    x = resize(img[..., :3], (size, size), preserve_range=True, anti_aliasing=True).astype(np.float32)
    p = np.asarray(model.predict(backbone(name).preprocess(x[None]), verbose=0))[0]
    labels = imagenet_classes()
    return [(labels[i], float(p[i])) for i in np.argsort(p)[::-1][:5]]


def check_backbone(name: str, weights: str | None = None, images: tuple[str, ...] = ()) -> Check:
    """Build ``name`` with its ImageNet top from ``weights`` (default: what a run would use) and
    classify the sample photos and ``images``."""
    import keras
    from skimage import data, io
    spec = backbone(name)
    label, path, looked = _locate(name, weights)
    if path is None or not path.is_file():
        return Check(name, label, "missing", "no weights file; looked at " + ", ".join(map(str, looked)))
    size = TOP_SIZE.get(name, 224)
    layers = _h5_layers(path) if path.suffix == ".h5" and not path.name.endswith(".weights.h5") else None
    has_top = layers is None or "predictions" in layers
    model = spec.build(include_top=has_top, weights=None, input_shape=(size, size, 3))
    if layers is not None:
        bad = _first_mismatch(model, layers)
        if bad:
            return Check(name, label, "mismatch", f"{path.name} does not fit {spec.constructor}: {bad}")
        if not has_top:
            return Check(name, label, "shapes-only", f"{path.name}: every layer's shapes match {spec.constructor}; "
                         "the file has no 1000-class top, so it cannot be classified")
    try:
        if spec.bundled:
            from npc_lib.learn.lite0 import load_lite0_weights
            load_lite0_weights(model, str(path))
        else:
            model.load_weights(str(path))
    except (ValueError, OSError, KeyError, NpcError) as exc:
        return Check(name, label, "mismatch", f"{path.name} does not load into {spec.constructor}: {exc}")
    photos = {}
    for photo, (what, hits) in PHOTOS.items():
        top = classify(model, name, getattr(data, photo)(), size)
        idx = [imagenet_classes().index(lbl) for lbl, _ in top]
        photos[photo] = {"top5": top, "ok": any(i in hits for i in idx), "expected": what}
    for img in images:
        photos[str(img)] = {"top5": classify(model, name, io.imread(img), size), "ok": None, "expected": ""}
    keras.backend.clear_session()
    failed = [p for p, r in photos.items() if r["ok"] is False]
    if failed:
        return Check(name, label, "fail", "the weights do not behave like ImageNet weights: " + "; ".join(
            f"{p} photo has no {photos[p]['expected']} in its top 5" for p in failed), photos)
    return Check(name, label, "pass", "behaves like ImageNet weights (both sample photos classified)", photos)


def format_check(c: Check) -> str:
    """The report of one check as printed by the command."""
    lines = [f"{c.backbone}: {c.status.upper()} — {c.message}", f"  weights: {c.weights}"]
    for photo, r in c.photos.items():
        mark = {True: "ok", False: "FAIL", None: ""}[r["ok"]]
        lines.append(f"  {photo} {mark}".rstrip() + ": " + ", ".join(f"{lbl} {p:.3f}" for lbl, p in r["top5"]))
    return "\n".join(lines)


def as_dict(c: Check) -> dict:
    return {**asdict(c), "ok": c.ok}
