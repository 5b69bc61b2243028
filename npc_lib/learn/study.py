"""Orchestration of one profile on one cohort: split → image store → features → 32 runs."""
from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from npc_lib.atomic import write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.cache import ImageStore, build_image_store, open_image_store
from npc_lib.data.cohort import load_cohort
from npc_lib.data.rois import dataset_mask
from npc_lib.data.split import study_split, write_split
from npc_lib.errors import NpcError
from npc_lib.layout import shared_paths_problem
from npc_lib.layout import RunLayout
from npc_lib.learn.features import extract_features
from npc_lib.data.prepared import Prepared, check_datasets, dataset_counts, open_prepared, prepare  # noqa: F401
from npc_lib.learn.train import is_finished, run_config, train_finetune, train_heads
from npc_lib.progress import progress_bar
from npc_lib.vocabulary import DATASETS, LITE0

log = logging.getLogger(__name__)


def grid(profile: Profile, datasets=None, variants=None, backbones=None) -> list[tuple[str, str, str]]:
    """(dataset, variant, backbone) triples of a profile, optionally filtered."""
    out = []
    for b in backbones or profile.backbones:
        for v in variants or profile.variants:
            for d in datasets or profile.datasets:
                out.append((d, v, b))
    return out


def train_grid(profile: Profile, prep: Prepared, runs: list[tuple[str, str, str]], progress: bool = True,
               layout: RunLayout | None = None) -> pd.DataFrame:
    """Train every run (skipping finished ones with the same config hash).

    ``layout``: where the models go (default: the prepared folder's); features always come from
    the prepared folder's cache.

    Returns
    -------
    DataFrame, one row per run: ``dataset, variant, backbone, status`` (``reused``/``trained``), ``wall_s``.
    """
    layout = layout or prep.layout
    rows = []
    by_backbone: dict[str, list] = {}
    for d, v, b in runs:
        by_backbone.setdefault(b, []).append((d, v))
    bar = progress_bar(total=len(runs), desc="models", unit="model", enabled=progress)
    for b, items in by_backbone.items():
        pending = [(d, v) for d, v in items if not is_finished(
            layout.model(d, v, b), config_hash(run_config(profile, d, v, b)), prep.store.fingerprint)]
        bar.update(len(items) - len(pending))
        rows += [{"dataset": d, "variant": v, "backbone": b, "status": "reused"}
                 for d, v in items if (d, v) not in pending]
        if not pending:
            continue
        feats = None
        if profile.train.mode == "head":
            t0 = time.perf_counter()
            feats = extract_features(prep.store, b, profile, prep.layout.cache)
            log.info("%s features in %.1f s", b, time.perf_counter() - t0)
        if feats is not None:  # all of this backbone's heads in one stacked fit
            metas = train_heads(prep.store, feats, [(d, v, layout.model(d, v, b)) for d, v in pending],
                                profile, prep.split)
            rows += [{"dataset": d, "variant": v, "backbone": b, "status": "trained", "wall_s": m["wall_s"]}
                     for (d, v), m in zip(pending, metas)]
            bar.update(len(pending))
            continue
        for d, v in pending:
            meta = train_finetune(prep.store, d, v, b, profile, prep.split, layout.model(d, v, b), progress=progress)
            rows.append({"dataset": d, "variant": v, "backbone": b, "status": "trained", "wall_s": meta["wall_s"]})
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def ablation_profile(profile: Profile) -> Profile | None:
    """The pretraining ablation's profile: EfficientNet-Lite0 from random initialisation in the profile's own
    mode (head mode against head mode; fine-tuned against fine-tuned), everything else as ``profile``; None
    when the profile has no Lite0 or Lite0 itself runs without pretrained weights (nothing to compare)."""
    if LITE0 not in profile.backbones or str(profile.weights) in ("none", "random", "None"):
        return None
    return profile.replaced({"backbones": [LITE0], "weights": "none", "model_choice": LITE0})


FINETUNE_INITS = {"imagenet": "imagenet", "random": "none"}  # init -> the weights setting it trains from


def finetune_profiles(profile: Profile) -> dict[str, Profile]:
    """The fine-tuning ablation's profiles (``finetune_ablation``: epochs, datasets, variants), one per
    initialisation: EfficientNet-Lite0 with every layer trained, from ImageNet and from random weights, as
    the paper's recipe but for the epochs; empty when the profile has no such key, no Lite0, or fine-tunes
    its whole grid anyway."""
    spec = profile.as_dict().get("finetune_ablation")
    if not spec or LITE0 not in profile.backbones or profile.train.mode == "finetune":
        return {}
    return {init: profile.replaced({"backbones": [LITE0], "weights": w, "train.mode": "finetune",
                                    "train.epochs": spec["epochs"], "datasets": spec["datasets"],
                                    "variants": spec["variants"], "model_choice": LITE0})
            for init, w in FINETUNE_INITS.items()}


def train_finetune_ablation(profile: Profile, prep: Prepared, progress: bool = True) -> pd.DataFrame | None:
    """Fine-tune EfficientNet-Lite0 end to end (``tf.data`` from the image store, no augmentation) from ImageNet
    and from random weights on the profile's ``finetune_ablation`` datasets, on the main split, into
    ``finetune/<init>/models``; finished runs are reused. None without such a key."""
    profiles = finetune_profiles(profile)
    if not profiles:
        return None
    t0 = time.perf_counter()
    parts = []
    for init, p in profiles.items():
        # each initialisation in a process of its own: TensorFlow keeps what a training run allocated, so
        # fine-tuning in the runner would add it to the features and heads the runner already holds
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            parts.append(pool.submit(_finetune_child, p, str(prep.layout.root), init).result().assign(init=init))
    out = pd.concat(parts, ignore_index=True)
    log.info("fine-tuning ablation (%d runs) in %.1f s", len(out), time.perf_counter() - t0)
    return out


def _finetune_child(profile: Profile, runs_dir: str, init: str) -> pd.DataFrame:
    """One initialisation of the fine-tuning ablation (in a spawned process)."""
    prep = open_prepared(runs_dir)
    return train_grid(profile, prep, grid(profile), progress=False, layout=prep.layout.finetune(init))


def train_ablation(profile: Profile, prep: Prepared, progress: bool = True) -> pd.DataFrame | None:
    """Fit the pretraining ablation's heads (Lite0, random initialisation) on the same datasets and
    patient split as the main grid, into ``ablation/models``; None when :func:`ablation_profile` is."""
    p = ablation_profile(profile)
    if p is None:
        return None
    t0 = time.perf_counter()
    out = train_grid(p, prep, grid(p), progress=progress, layout=prep.layout.ablation)
    log.info("pretraining ablation (%d heads) in %.1f s", len(out), time.perf_counter() - t0)
    return out


def train_one(profile: Profile, runs_dir: RunLayout | str | Path, dataset: str, variant: str, backbone_name: str) -> dict:
    """Train (or reuse) one run of a prepared study; returns its ``run.json``.

    Parameters
    ----------
    profile : the profile
    runs_dir : a prepared runs folder
    dataset, variant, backbone_name : the run

    Returns
    -------
    dict: the run's ``run.json``.
    """
    prep = open_prepared(runs_dir)
    train_grid(profile, prep, [(dataset, variant, backbone_name)], progress=False)
    return prep.layout.model(dataset, variant, backbone_name).read_meta()


def features_job(name: str, store_root: str, profile: Profile, cache_dir: str) -> str:
    """One backbone's cached features, computed on a worker (the runner then reads the cache)."""
    problem = shared_paths_problem([store_root, cache_dir])
    if problem:
        raise NpcError(problem)
    extract_features(open_image_store(store_root, verify=False), name, profile, Path(cache_dir))
    return name


def features_on_workers(executor, profile: Profile, prep: Prepared) -> None:
    """Compute every backbone's features as parallel jobs on the executor's workers; a job that
    fails there is simply recomputed in this process afterwards (the feature cache decides)."""
    t0 = time.perf_counter()
    store_root = str(Path(prep.store.root).resolve())
    cache = str(prep.layout.cache.resolve())
    for name, _, error in executor.run(features_job, list(profile.backbones), store_root, profile, cache):
        if error:
            log.warning("%s features on the cluster failed (%s); computing them here", name, error)
    log.info("backbone features on %d worker(s) in %.1f s", executor.info.workers, time.perf_counter() - t0)
