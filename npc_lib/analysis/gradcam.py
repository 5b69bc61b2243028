"""Grad-CAM on the flat classifier graph, CAM-in-ROI and a randomisation check.

A head-mode run is rebuilt as one flat model (image → backbone layers → GAP → Dropout → Dense):
the backbone gets the run's weights (ImageNet, a file, or the saved random initialisation) and
the training-set standardisation is folded into the Dense layer (w/sd, b − Σ w·mean/sd), so the
rebuilt model reproduces the run's probabilities exactly. Runs of one backbone share a graph;
only the Dense weights change. Grad-CAM (Selvaraju et al. 2017) weights a conv layer's maps by
the spatial mean of the gradient of the DM logit; the layer is the deepest of the backbone's
candidates whose map is at least ``MIN_CAM_GRID`` on a side at the run's input size (at small
inputs the last conv map is 3 × 3 or 1 × 1, which cannot point at a lesion). CAM-in-ROI is the share of CAM mass
inside the true lesion (synthetic masks) or the drawn rectangle (real cohorts), next to the
share of the image that region covers. The sanity check (Adebayo et al. 2018) compares CAMs
with those of a weight-randomised copy of the model by Spearman rank correlation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from npc_lib.data.rois import VARIANT_REGISTRY, roi_mask
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun, RunLayout
from npc_lib.learn.models import add_head, backbone, build_feature_extractor, resolve_weights

LESION_LABELS = {"npc": (1, 2), "cmln": (3, 4, 5)}  # a mask file without a legend: the generator's values
REGION_PREFIXES = {"npc": "primary", "cmln": "node"}  # legend names that make up each region's lesion


def lesion_labels(legend: str) -> dict[str, tuple[int, ...]]:
    """Each region's lesion label values from a mask file's legend (JSON: value -> name; names
    starting ``primary`` make up the NPC lesion, ``node`` a lymph node)."""
    names = {int(k): str(v) for k, v in json.loads(legend).items()}
    return {region: tuple(sorted(k for k, name in names.items() if name.startswith(prefix)))
            for region, prefix in REGION_PREFIXES.items()}
MIN_CAM_GRID = 5  # smallest Grad-CAM map side worth showing


@dataclass
class CamModel:
    """A flat classifier and its Grad-CAM view (conv maps, probability)."""

    model: object
    grad_model: object
    backbone: str
    input_size: int
    layer: str = ""
    _step: object = None


def cam_model(model, layer_name: str, backbone_name: str = "", input_size: int | None = None) -> CamModel:
    """Wrap a flat functional classifier: outputs (``layer_name`` activations, probability)."""
    import keras
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise NpcError(f"layer {layer_name!r} not in model {model.name}") from None
    grad_model = keras.Model(model.inputs, [layer.output, model.output])
    return CamModel(model, grad_model, backbone_name, input_size or int(model.input_shape[1]), layer_name)


def cam_layer(model, spec) -> str:
    """The deepest of ``spec.cam_layers`` whose map is at least ``MIN_CAM_GRID`` on each side in
    ``model``; the one with the largest map when none is."""
    grids = {}
    for name in spec.cam_layers:
        try:
            shape = model.get_layer(name).output.shape
        except ValueError:
            raise NpcError(f"{spec.name}: Grad-CAM layer {name!r} not in the model") from None
        grids[name] = min(int(shape[1]), int(shape[2]))
        if grids[name] >= MIN_CAM_GRID:
            return name
    return max(grids, key=grids.get)


def backbone_weights(runs_dir: Path, meta: dict):
    """The weights argument that rebuilds a head-mode run's backbone exactly."""
    prov = meta["weights"]
    if prov["used"] == "random":
        path = RunLayout.of(runs_dir).features(meta["store_fingerprint"]) / meta["features"] / \
            prov.get("backbone_weights", "backbone.weights.h5")
        if not path.is_file():
            raise NpcError(f"{path}: saved random backbone weights missing (delete the feature cache and retrain)")
        return "saved", path
    weights, _ = resolve_weights(meta["config"]["backbone"], meta["config"].get("weights"))
    return "keras", weights


def build_backbone_model(runs_dir: RunLayout | str | Path, meta: dict) -> CamModel:
    """The flat classifier of a head-mode run's backbone (head weights set by :func:`set_head`)."""
    import keras
    cfg = meta["config"]
    spec = backbone(cfg["backbone"])
    size = int(meta["input_size"])
    kind, weights = backbone_weights(Path(runs_dir), meta)
    extractor = build_feature_extractor(spec.name, size, weights if kind == "keras" else None)
    if kind == "saved":
        extractor.load_weights(weights)
    model = keras.Model(extractor.input, add_head(extractor.output, cfg["train"]["dropout"], cfg["train"]["l2"]),
                        name=f"{spec.name}_dm")
    return cam_model(model, cam_layer(model, spec), spec.name, size)


def set_head(cm: CamModel, run_dir: str | Path) -> None:
    """Load a run's head into the flat model, folding the feature standardisation into Dense."""
    import keras
    run = ModelRun(Path(run_dir))
    head = keras.models.load_model(run.head, compile=False)
    kernel, bias = head.get_layer("dm_probability").get_weights()
    st = np.load(run.standardiser)
    sd = np.where(st["sd"] > 1e-6, st["sd"], 1.0)
    w = kernel[:, 0] / sd
    b = bias - np.sum(w * st["mean"])
    cm.model.get_layer("dm_probability").set_weights([w[:, None].astype(np.float32), b.astype(np.float32)])


def load_run_model(runs_dir: RunLayout | str | Path, run_dir: str | Path) -> CamModel:
    """Any finished run as a flat CamModel (head mode rebuilt; finetune loaded as saved)."""
    import keras
    run = ModelRun(Path(run_dir))
    meta = run.read_meta()
    spec = backbone(meta["config"]["backbone"])
    if meta["mode"] == "finetune":
        model = keras.models.load_model(run.model, compile=False)
        return cam_model(model, cam_layer(model, spec), spec.name, int(meta["input_size"]))
    cm = build_backbone_model(runs_dir, meta)
    set_head(cm, run.root)
    return cm


def _cam_step(cm: CamModel):
    """A compiled Grad-CAM step for ``cm`` (built once, reused for every batch)."""
    import tensorflow as tf
    if getattr(cm, "_step", None) is None:
        @tf.function(reduce_retracing=True)
        def step(xb):
            with tf.GradientTape() as tape:
                maps, prob = cm.grad_model(xb, training=False)
                p = tf.clip_by_value(tf.cast(prob[:, 0], tf.float32), 1e-7, 1 - 1e-7)
                logit = tf.math.log(p) - tf.math.log1p(-p)
            grads = tape.gradient(logit, maps)  # images are independent in inference mode
            weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2))
            cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", tf.cast(maps, tf.float32), weights))
            cam = tf.image.resize(cam[..., None], tf.shape(xb)[1:3], method="bilinear")[..., 0]
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return tf.where(peak > 0, cam / tf.maximum(peak, 1e-12), 0.0), tf.cast(prob[:, 0], tf.float32)
        cm._step = step
    return cm._step


def cam_resolution(cm: CamModel) -> tuple[int, int]:
    """Spatial size of the Grad-CAM layer's maps at this model's input size."""
    shape = cm.grad_model.outputs[0].shape
    return int(shape[1]), int(shape[2])


def gradcam(cm: CamModel, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM maps [n, size, size] in [0, 1] (each scaled by its maximum; all-zero if none).

    A 1 × 1 conv map (a small input for a deep backbone) carries no spatial information: the
    maps are then NaN, which every summary reports as undefined.
    """
    return gradcam_and_probabilities(cm, x, batch_size)[0]


def gradcam_and_probabilities(cm: CamModel, x: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gradcam` and the model's probabilities of the same images, from the same forward pass."""
    import tensorflow as tf
    if cam_resolution(cm) == (1, 1):
        probs = cm.model(x, training=False).numpy().ravel() if len(x) else np.zeros(0, np.float32)
        return np.full(x.shape[:3], np.nan, np.float32), probs
    step = _cam_step(cm)
    out = [step(tf.constant(x[s:s + batch_size])) for s in range(0, len(x), batch_size)]
    if not out:
        return np.zeros((0,) + x.shape[1:3], np.float32), np.zeros(0, np.float32)
    return np.concatenate([c.numpy() for c, _ in out]), np.concatenate([p.numpy() for _, p in out])


def cam_in_roi(cam: np.ndarray, mask: np.ndarray) -> dict:
    """Share of positive CAM mass inside ``mask``, the mask's share of the image, and their ratio."""
    cam, mask = np.asarray(cam, float), np.asarray(mask, bool)
    area = float(mask.mean())
    if not np.isfinite(cam).all():
        return {"fraction": float("nan"), "area_share": area, "enrichment": float("nan")}
    cam = np.clip(cam, 0, None)
    total = cam.sum()
    fraction = float(cam[mask].sum() / total) if total > 0 else float("nan")
    return {"fraction": fraction, "area_share": float(area),
            "enrichment": fraction / area if area > 0 and np.isfinite(fraction) else float("nan")}


def randomised_copy(model, seed: int = 0):
    """A copy of ``model`` with every weight re-initialised (cascading randomisation, all layers)."""
    import keras
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def rank_correlations(cams_a: np.ndarray, cams_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation between paired CAMs (NaN where one is constant)."""
    out = []
    for a, b in zip(cams_a, cams_b):
        a, b = a.ravel(), b.ravel()
        ok = np.isfinite(a).all() and np.isfinite(b).all() and a.std() > 0 and b.std() > 0
        out.append(spearmanr(a, b).statistic if ok else np.nan)
    return np.asarray(out, float)


def roi_masks(cohort_dir: str | Path, rows: pd.DataFrame, geometry, variant: str) -> tuple[np.ndarray, str]:
    """Masks of the true region for stored images ``rows`` (store index rows), mapped like the image.

    Uses the exact lesion masks (``masks/<patient>.npz``) when the cohort has them, else the drawn
    (intratumour) rectangle. Returns (bool [n, size, size], "lesion mask" | "rectangle").
    """
    cohort_dir = Path(cohort_dir)
    box_cols = VARIANT_REGISTRY[variant].columns
    have_masks = all((cohort_dir / "masks" / f"{p}.npz").is_file() for p in rows["patient_id"].unique())
    out, cache = [], {}
    for r in rows.itertuples():
        if have_masks:
            if r.patient_id not in cache:
                z = np.load(cohort_dir / "masks" / f"{r.patient_id}.npz")
                legend = lesion_labels(str(z["legend"])) if "legend" in z.files else LESION_LABELS
                cache = {r.patient_id: (z["labels"], {u: i for i, u in enumerate(z["sop_instance_uids"].tolist())},
                                        legend)}
            labels, where, legend = cache[r.patient_id]
            if r.sop_instance_uid not in where:
                raise NpcError(f"masks/{r.patient_id}.npz has no slice for SOP {r.sop_instance_uid}")
            full = np.isin(labels[where[r.sop_instance_uid]], legend[r.region])
        else:
            full = np.zeros((r.rows, r.cols), bool)
            full[r.y0:r.y1, r.x0:r.x1] = True
        out.append(roi_mask(full, tuple(getattr(r, c) for c in box_cols), geometry))
    size = geometry.input_size
    return (np.stack(out) if out else np.zeros((0, size, size), bool)), ("lesion mask" if have_masks else "rectangle")
