"""A trained run's models applied, unchanged, to another site's cohort folder.

The external cohort is read and validated like any cohort, cropped into an image store with the run's own
ROI geometry (canvas, rim, percentiles) and scored by every finished model of the run: head-mode runs
through the same backbone's features (computed on the external images with the run's weights and input
size) and the run's own standardiser and head; fine-tuned runs through their saved network. Nothing is
refitted on the external patients: every one of them is a test patient.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.data.cache import ImageStore, open_image_store
from npc_lib.data.prepared import acquisition_ranges
from npc_lib.data.harmonise import cut_external_store, harmonised_external_store
from npc_lib.data.cohort import Cohort, load_cohort
from npc_lib.data.rois import dataset_mask
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun, RunLayout, model_runs_in
from npc_lib.learn.features import FeatureExtractor
from npc_lib.learn.headfit import apply_standardiser
from npc_lib.learn.train import profile_of_run

log = logging.getLogger(__name__)


@dataclass
class ExternalScores:
    """What :func:`score_external_cohort` returns."""

    predictions: dict            # (dataset, variant, backbone) -> images of the external cohort with probabilities
    metas: dict                  # the same keys -> the run's run.json
    store: ImageStore            # the external image store
    cohort: Cohort               # the validated external cohort
    warnings: list[str] = field(default_factory=list)


def finished_runs(layout: RunLayout, backbones=None) -> list[tuple[dict, ModelRun]]:
    """(run.json, run) of every finished model (of ``backbones`` only, when given)."""
    return [(run.read_meta(), run) for run in model_runs_in(layout.models, backbones) if run.finished]


def check_external_cohort(store: ImageStore, trained: set[tuple[str, str]], name: str) -> None:
    """Refuse an external cohort that cannot be scored like the run: a dataset the run trained on with no
    image there, or without patients of both outcomes. One line naming the cohort and what is missing."""
    missing, one_class = [], []
    for dataset in sorted({d for d, _ in trained}):
        view = store.index.loc[dataset_mask(store.index, dataset)]
        if view.empty:
            missing.append(dataset)
        elif view.groupby("patient_id")["label"].first().nunique() < 2:
            one_class.append(dataset)
    if missing or one_class:
        what = "; ".join(filter(None, [f"no images for {', '.join(missing)}" if missing else "",
                                       f"patients of one outcome only in {', '.join(one_class)}" if one_class else ""]))
        raise NpcError(f"external cohort {name}: {what} — the run trained on "
                       f"{', '.join(sorted({d for d, _ in trained}))}",
                       hint="score it with a run trained on the datasets this cohort holds, or add the missing ROIs")


def range_warnings(internal: Cohort | dict, external: Cohort | dict, sample: int = 20) -> list[str]:
    """Where the external cohort lies outside the training cohort: pixel spacing, slice spacing and the
    stored intensity range (99th percentile of a sample of series). Either side: a cohort, or its
    :func:`acquisition_ranges`."""
    out = []
    a, b = (x if isinstance(x, dict) else acquisition_ranges(x, sample) for x in (internal, external))
    for key, what in (("pixel_spacing_mm", "pixel spacing"), ("slice_spacing_mm", "slice spacing")):
        lo, hi = a[key]
        blo, bhi = b[key]
        if blo < lo - 1e-6 or bhi > hi + 1e-6:
            out.append(f"{what} {blo:g}–{bhi:g} mm lies outside the training cohort's {lo:g}–{hi:g} mm")
    ia, ib = np.asarray(a["p99"]), np.asarray(b["p99"])
    if len(ia) and len(ib) and (np.median(ib) < ia.min() or np.median(ib) > ia.max()):
        out.append(f"stored intensities (99th percentile, median {np.median(ib):.0f}) lie outside the training "
                   f"cohort's range {ia.min():.0f}–{ia.max():.0f}")
    return out


def external_store(runs_dir: RunLayout | str | Path, external_dir: str | Path, progress: bool = True,
                   out: RunLayout | None = None, internal_cohort: Cohort | None = None,
                   harmonisation: tuple[str, bool] = ("none", False),
                   fit_cohort: str | Path | None = None) -> tuple[ImageStore, Cohort, list[str]]:
    """An external cohort's image store as the run's models will see it, checked against what they were trained
    on: ``(store, cohort, warnings)``; arguments as :func:`score_external_cohort`."""
    layout = RunLayout.of(runs_dir)
    external_dir = Path(external_dir)
    out = out or layout.external_run(external_dir.resolve().name)
    runs = finished_runs(layout)
    if not runs:
        raise NpcError(f"no finished models under {layout.models}", hint="train the run first (npc-study run)")
    ref = layout.read_cohort_ref()
    train_store = open_image_store(layout.image_store(ref["store"]), verify=False)
    cohort = load_cohort(external_dir, progress=progress)
    split = layout.read_split()
    fitted_on = None
    if fit_cohort is not None and harmonisation[0] != "none":
        fitted_on = cut_external_store(load_cohort(fit_cohort, progress=False), train_store, split, out.cache,
                                       harmonisation[1])
    store = harmonised_external_store(cohort, train_store, split, out.cache, *harmonisation, fitted_on=fitted_on,
                                      progress=progress)
    trained = {(m["config"]["dataset"], m["config"]["variant"]) for m, _ in runs}
    check_external_cohort(store, trained, str(external_dir))
    internal = internal_cohort or ref.get("ranges") or load_cohort(ref["cohort"], progress=False)
    warnings = range_warnings(internal, cohort)
    for w in warnings:
        log.warning("external cohort %s: %s", external_dir, w)
    return store, cohort, warnings


def score_external_cohort(runs_dir: RunLayout | str | Path, external_dir: str | Path, progress: bool = True,
                          out: RunLayout | None = None, internal_cohort: Cohort | None = None,
                          harmonisation: tuple[str, bool] = ("none", False),
                          fit_cohort: str | Path | None = None) -> ExternalScores:
    """Score every finished model of a run on an external cohort folder (project format).

    Parameters
    ----------
    runs_dir : the trained run's folder
    external_dir : the external cohort (``clinical.csv``, ``rois.csv``, ``dicom/``)
    progress : progress bars
    out : where the external image store and features go (default ``RUNS_DIR/external/<cohort name>``)
    internal_cohort : the run's own cohort when already loaded (read from the run's record otherwise)
    harmonisation : (intensity choice, resample to the training spacing) for the external images
    fit_cohort : another draw of the external centre the intensity map is fitted on (default: the external
        cohort's own pixels, which use no outcome)

    Returns
    -------
    :class:`ExternalScores`; raises :class:`NpcError` for a cohort the run cannot score.
    """
    layout = RunLayout.of(runs_dir)
    out = out or layout.external_run(Path(external_dir).resolve().name)
    store, cohort, warnings = external_store(layout, external_dir, progress, out, internal_cohort, harmonisation,
                                             fit_cohort)
    predictions, metas = score_store(finished_runs(layout), store, out.cache)
    return ExternalScores(predictions, metas, store, cohort, warnings)


def score_store(runs: list[tuple[dict, ModelRun]], store: ImageStore, cache: Path) -> tuple[dict, dict]:
    """Every run of ``runs`` (``(run.json, ModelRun)`` pairs) on the images of its dataset in ``store``, all
    of them test images; head-mode runs through their backbone's features of ``store`` (cached in ``cache``).

    Returns
    -------
    ``(predictions, metas)``: (dataset, variant, backbone) -> image rows with ``probability``; -> run.json.
    """
    predictions = score_stores(runs, {"store": store}, cache)["store"]
    metas = {(m["config"]["dataset"], m["config"]["variant"], m["config"]["backbone"]): m for m, _ in runs}
    return predictions, {k: metas[k] for k in predictions}


def score_stores(runs: list[tuple[dict, ModelRun]], stores: dict, cache: Path) -> dict:
    """:func:`score_store` on several stores (label -> store), each backbone built once for all of them.

    Returns
    -------
    label -> {(dataset, variant, backbone) -> image rows with ``probability``}.
    """
    out = {label: {} for label in stores}
    for backbone in sorted({m["config"]["backbone"] for m, _ in runs}):
        items = [(m, r) for m, r in runs if m["config"]["backbone"] == backbone]
        head = [(m, r) for m, r in items if m.get("mode") == "head"]
        extractor = FeatureExtractor(backbone, profile_of_run(head[0][0]).replaced(
            {"variants": sorted({m["config"]["variant"] for m, _ in head})})) if head else None
        try:
            for label, store in stores.items():
                feats = extractor.features(store, cache) if extractor is not None else None
                everyone = pd.Series("test", index=store.index["patient_id"].unique())
                for meta, run in items:
                    d, v = meta["config"]["dataset"], meta["config"]["variant"]
                    view = store.index.loc[dataset_mask(store.index, d)].assign(
                        split=lambda x: x["patient_id"].map(everyone))
                    rows = view["image_id"].to_numpy()
                    if meta.get("mode") == "head":
                        prob = _head_probabilities(run, np.asarray(feats[v].values[rows], np.float32))
                    else:
                        prob = _network_probabilities(run, store, v, rows, meta)
                    out[label][(d, v, backbone)] = view[["patient_id", "image_id", "label", "split"]].assign(
                        probability=prob)
        finally:
            if extractor is not None:
                extractor.close()
    return out


def _head_probabilities(run: ModelRun, X: np.ndarray) -> np.ndarray:
    """The run's own standardiser (training images' mean and SD) and head, in inference mode."""
    import keras
    z = np.load(run.standardiser)
    Xs = apply_standardiser(X, z["mean"], z["sd"])
    kernel, bias = keras.models.load_model(run.head, compile=False).get_layer("dm_probability").get_weights()
    with np.errstate(over="ignore"):  # a saturated logit: exp overflows to inf, the probability is 0, as it should
        return 1.0 / (1.0 + np.exp(-(Xs @ kernel.ravel() + float(bias[0]))))


def _network_probabilities(run: ModelRun, store: ImageStore, variant: str, rows: np.ndarray, meta: dict) -> np.ndarray:
    """A fine-tuned run's saved network on the external images."""
    import keras

    from npc_lib.learn.loaders import tf_images
    from npc_lib.learn.models import backbone
    model = keras.models.load_model(run.model, compile=False)
    ds = tf_images(store.images(variant), rows, backbone(meta["config"]["backbone"]), int(meta["input_size"]),
                   int(meta["config"]["train"]["batch_size"]))
    return model.predict(ds, verbose=0).ravel()
