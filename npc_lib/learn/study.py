"""Fitting a profile's grid on a prepared study (the CLI's ``train`` and the stages use it): the (dataset,
variant, backbone) cells, finished runs reused while their configuration and image store match."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from npc_lib.ablations import ablation_profile  # noqa: F401 - re-exported
from npc_lib.config import Profile, config_hash
from npc_lib.data.prepared import (Prepared, check_datasets, dataset_counts, open_prepared,  # noqa: F401 - re-exported
                                   prepare)
from npc_lib.layout import RunLayout
from npc_lib.learn.features import extract_features
from npc_lib.learn.train import is_finished, run_config, train_finetune, train_heads
from npc_lib.progress import progress_bar

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
