"""Grad-CAM over a study's runs: CAM-in-ROI per run, the randomisation check, Figs 6 and 7 data.

The same seeded test images (DM and non-DM patients, both regions where the dataset has both)
are explained by every backbone, so the figures compare backbones on identical inputs. Each
rebuilt model is checked against the run's saved probabilities before its CAMs are used.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib.analysis.book_numbers import cam_numbers
from npc_lib.atomic import atomic_path, write_csv
from npc_lib.data.cache import open_image_store
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun, RunLayout
from npc_lib.progress import progress_bar
from npc_lib.analysis.gradcam import (MIN_CAM_GRID, build_backbone_model, cam_in_roi, cam_resolution, cam_model, gradcam,
                                      gradcam_and_probabilities, load_run_model, randomised_copy,
                      rank_correlations, roi_masks, set_head)
from npc_lib.learn.loaders import preprocess_images
from npc_lib.learn.models import backbone
from npc_lib.data.rois import Geometry, dataset_mask
from npc_lib.vocabulary import INTRA_PERITUMOUR, INTRATUMOUR

PROBABILITY_TOLERANCE = 1e-3


def select_images(index: pd.DataFrame, split: pd.Series, dataset: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` test images of ``dataset``: half from DM patients, one image per patient where
    possible, regions balanced; seeded."""
    view = index.loc[dataset_mask(index, dataset)]
    view = view[view["patient_id"].map(split) == "test"]
    rng = np.random.default_rng(seed)
    picked = []
    for label, k in ((1, n - n // 2), (0, n // 2)):
        part = view[view["label"] == label]
        part = part.iloc[rng.permutation(len(part))]
        first = part.drop_duplicates("patient_id")  # one image per patient first
        order = pd.concat([first.assign(_r=first.groupby("region").cumcount()),
                           part.drop(first.index).assign(_r=10 ** 6)])
        picked.append(order.sort_values("_r", kind="stable").head(k).drop(columns="_r"))
    return pd.concat(picked).reset_index(drop=True)


def _resize(cams: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf
    if cams.shape[1] == size or not np.isfinite(cams).all():
        return cams if cams.shape[1] == size else np.full((len(cams), size, size), np.nan, np.float32)
    return tf.image.resize(cams[..., None], (size, size), method="bilinear").numpy()[..., 0]


def cam_study(runs_dir: RunLayout | str | Path, cohort_dir: str | Path | None = None, n_images: int = 16, seed: int = 0,
              sanity: bool = True, progress: bool = True) -> dict:
    """Grad-CAM for every finished run; returns ``{"table", "examples", "seconds_per_image"}``.

    Parameters
    ----------
    runs_dir : the runs folder
    cohort_dir : the cohort folder (default: the one in ``cohort.json``)
    n_images : test images explained per model (the same images for every backbone)
    seed : image choice seed
    sanity : also run the weight-randomisation check
    progress : show a progress bar

    Returns
    -------
    dict: ``table`` (one row per run: CAM-in-ROI fraction, area share, enrichment, randomised
    Spearman ρ, note; also written to the run's ``gradcam_table.csv``), ``summary`` (its means per
    variant), ``examples`` ((dataset, variant) -> images (n, s, s), masks (n, s, s), labels and
    per-backbone CAMs (n, s, s) in [0, 1]), ``seconds_per_image`` and ``numbers`` (what the
    chapter cites, :func:`npc_lib.analysis.book_numbers.cam_numbers`).
    """
    import keras

    layout = RunLayout.of(runs_dir)
    cohort_dir = Path(cohort_dir or layout.read_cohort_ref()["cohort"])
    metas = [(run.root, run.read_meta()) for run in layout.model_runs()]
    if not metas:
        raise NpcError(f"no finished runs under {layout.models}")
    split = layout.read_split()
    stores, rows, examples, cam_seconds, n_cams = {}, [], {}, 0.0, 0
    by_backbone: dict[str, list] = {}
    for d, m in metas:
        by_backbone.setdefault(m["config"]["backbone"], []).append((d, m))
    bar = progress_bar(total=len(metas), desc="Grad-CAM", unit="model", enabled=progress)
    for name, items in by_backbone.items():
        shared = build_backbone_model(runs_dir, items[0][1]) if items[0][1]["mode"] == "head" else None
        random_cm, randomised_later = None, []
        for run_dir, meta in items:
            cfg = meta["config"]
            fp = meta["store_fingerprint"]
            if fp not in stores:
                stores[fp] = open_image_store(layout.image_store(fp), verify=False)
            store = stores[fp]
            geometry = Geometry(**store.manifest["geometry"])
            sel = select_images(store.index, split, cfg["dataset"], n_images, seed)
            images = np.asarray(store.images(cfg["variant"])[np.sort(sel["image_id"].to_numpy())])
            order = np.argsort(np.argsort(sel["image_id"].to_numpy()))
            images = images[order]
            masks, mask_kind = roi_masks(cohort_dir, sel, geometry, cfg["variant"])
            if shared is not None:
                set_head(shared, run_dir)
                cm = shared
            else:
                cm = load_run_model(runs_dir, run_dir)
            x = preprocess_images(images, backbone(name), cm.input_size)
            pred = pd.read_parquet(ModelRun(run_dir).predictions).set_index("image_id")["probability"]
            t0 = time.perf_counter()
            cams, rebuilt = gradcam_and_probabilities(cm, x)  # the probabilities from the same forward pass
            cams = _resize(cams, images.shape[1])
            cam_seconds += time.perf_counter() - t0
            n_cams += len(x)
            gap = float(np.max(np.abs(rebuilt - pred.loc[sel["image_id"]].to_numpy()))) if len(x) else 0.0
            if gap > PROBABILITY_TOLERANCE:
                raise NpcError(f"{run_dir.name}: rebuilt model differs from the run's predictions by {gap:.2g}")
            stats = pd.DataFrame([cam_in_roi(c, mk) for c, mk in zip(cams, masks)])
            row = {"dataset": cfg["dataset"], "variant": cfg["variant"], "backbone": name, "images": len(x),
                   "mask": mask_kind, "cam_in_roi": stats["fraction"].mean(),
                   "area_share": stats["area_share"].mean(), "enrichment": stats["enrichment"].mean(),
                   "cam_grid": "x".join(map(str, cam_resolution(cm))), "cam_layer": cm.layer,
                   "max_probability_gap": gap}
            if sanity and shared is not None:  # after this backbone's runs, on the same compiled graph
                randomised_later.append((row, x, cams, images.shape[1]))
            elif sanity:
                if random_cm is None:
                    random_cm = cam_model(randomised_copy(cm.model, seed), cm.layer, name, cm.input_size)
                row.update(_randomisation_check(cams, gradcam(random_cm, x), images.shape[1]))
            rows.append(row)
            key = (cfg["dataset"], cfg["variant"])
            ex = examples.setdefault(key, {"images": images, "masks": masks, "labels": sel["label"].to_numpy(),
                                           "regions": sel["region"].to_numpy(),
                                           "patients": sel["patient_id"].to_numpy(str), "cams": {}})
            ex["cams"][name] = cams
            bar.update(1)
        if randomised_later:  # the shared model with every weight re-initialised: no second graph to compile
            shared.model.set_weights(randomised_copy(shared.model, seed).get_weights())
            for row, x, cams, size in randomised_later:
                row.update(_randomisation_check(cams, gradcam(shared, x), size))
        keras.backend.clear_session()
    bar.close()
    table = pd.DataFrame(rows)
    write_csv(layout.gradcam_table, table)
    seconds = cam_seconds / max(n_cams, 1)
    return {"table": table, "examples": examples, "seconds_per_image": seconds,
            "summary": table.groupby("variant")[["cam_in_roi", "area_share", "enrichment"]].mean().round(3),
            "numbers": cam_numbers(table, seconds, MIN_CAM_GRID)}


def _randomisation_check(cams: np.ndarray, random_cams: np.ndarray, size: int) -> dict:
    """The weight-randomisation sanity check of one run's CAMs: median Spearman ρ against the CAMs of the
    same images under the randomised network."""
    rho = rank_correlations(cams, _resize(random_cams, size))
    return {"randomised_spearman": float(np.nanmedian(rho)) if np.isfinite(rho).any() else np.nan,
            "note": "" if np.isfinite(cams).all() else "conv map 1x1 at this input size: CAM undefined"}


def cam_panels(examples: dict, dataset: str) -> list[tuple[str, tuple[str, str], str]]:
    """The Grad-CAM figures to draw (Figs 6 and 7): ``(figure name, (dataset, variant), title)`` for
    ``dataset``, else the first dataset that has examples.

    Parameters
    ----------
    examples : the ``examples`` of :func:`cam_study`
    dataset : the preferred dataset

    Returns
    -------
    list of (figure name, example key, title)
    """
    if not examples:
        return []
    ds = dataset if any(k[0] == dataset for k in examples) else sorted(examples)[0][0]
    return [(name, (ds, variant), f"{ds}, {variant}")
            for name, variant in (("fig6_gradcam_intra_peritumour", INTRA_PERITUMOUR),
                                  ("fig7_gradcam_intratumour", INTRATUMOUR)) if (ds, variant) in examples]


def save_cam_examples(examples: dict, path: str | Path) -> Path:
    """Store the Grad-CAM study's example images, masks and CAMs for :class:`CamViewer`.

    Parameters
    ----------
    examples : ``cam_study(...)["examples"]``
    path : the .npz to write

    Returns
    -------
    Path of the written file.
    """
    arrays = {}
    for (dataset, variant), ex in examples.items():
        key = f"{dataset}~{variant}"
        arrays[f"{key}|images"] = ex["images"]
        arrays[f"{key}|masks"] = ex["masks"]
        arrays[f"{key}|labels"] = ex["labels"]
        if "patients" in ex:
            arrays[f"{key}|patients"] = np.asarray(ex["patients"], str)
        for b, cam in ex["cams"].items():
            arrays[f"{key}|cam|{b}"] = cam.astype(np.float16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path
