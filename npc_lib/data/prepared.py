"""A prepared study: the cohort validated, the patient split fixed and the image store built (or reused).

Everything here is data: no model is built. The eight datasets are views of the store
(:func:`npc_lib.data.rois.dataset_mask`); :func:`check_datasets` stops a study whose split leaves a dataset
without both outcomes before anything is trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from npc_lib.atomic import write_json
from npc_lib.config import Profile, config_hash
from npc_lib.data.cache import ImageStore, build_image_store, open_image_store
from npc_lib.data.cohort import Cohort, load_cohort
from npc_lib.data.rois import dataset_mask
from npc_lib.data.split import study_split, write_split
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout
from npc_lib.vocabulary import DATASETS


@dataclass
class Prepared:
    """A prepared study: the patient split (patient_id -> train/test), the image store and the
    run folder's layout."""

    split: pd.Series
    store: ImageStore
    layout: RunLayout

    def __post_init__(self):
        self.layout = RunLayout.of(self.layout)


def prepare(profile: Profile, cohort_dir: str | Path, runs_dir: RunLayout | str | Path, progress: bool = True,
            check: bool = True, rebuild: bool = False) -> Prepared:
    """Validate the cohort, fix the patient split and build (or reuse) the image store.

    Parameters
    ----------
    profile : the profile (split seed and test fraction, geometry)
    cohort_dir : a cohort folder (clinical.csv, rois.csv, dicom/; see README "Your own cohort")
    runs_dir : the runs folder; ``split.csv``, ``cohort.json`` and ``cache/`` are written there
    check : stop on a dataset that cannot be trained or scored (:func:`check_datasets`)
    rebuild : build the image store anew even when a valid one with the same fingerprint exists (its
        code changed)

    Returns
    -------
    :class:`Prepared`
    """
    layout = RunLayout.of(runs_dir)
    cohort = load_cohort(cohort_dir, progress=progress)
    split = study_split(cohort.clinical, profile.split)  # written below, once the datasets passed
    store = build_image_store(cohort, profile.geometry, layout.cache, progress=progress, rebuild=rebuild)
    if check:
        check_datasets(store, split, profile)  # a degenerate dataset stops here, before any training
    write_split(layout.split, split)
    write_json(layout.cohort_ref, {"cohort": str(Path(cohort_dir).resolve()), "store": store.fingerprint,
                                   "profile": profile.name, "config_hash": config_hash(profile),
                                   "ranges": acquisition_ranges(cohort)})
    return Prepared(split, store, layout)


def acquisition_ranges(cohort: Cohort, sample: int = 20) -> dict:
    """What a cohort's scans span: pixel and slice spacing (mm) and the stored intensities' 99th percentile of a
    sample of series (another centre's scans are compared with these)."""
    import numpy as np
    s = cohort.summary()
    ids = list(cohort.series)[:sample]
    return {"pixel_spacing_mm": s["pixel_spacing_mm"], "slice_spacing_mm": s["slice_spacing_mm"],
            "p99": [float(np.percentile(cohort.load_series(p).pixels, 99)) for p in ids]}


MIN_TEST_PATIENTS = 5  # per dataset; fewer cannot give an AUC worth a table row


def check_datasets(store: ImageStore, split: pd.Series, profile: Profile) -> None:
    """Stop with a clear message when a dataset of the profile cannot be trained or scored: its
    test split lacks DM or non-DM patients or holds fewer than ``MIN_TEST_PATIENTS``, its training
    split lacks a class, or the batch size exceeds its training images."""
    counts = dataset_counts(store, split).set_index(["dataset", "split"])
    batch = int(profile.train.batch_size)
    for d in profile.datasets:
        test, train = counts.loc[(d, "test")], counts.loc[(d, "train")]
        dm, no_dm = int(test["dm_patients"]), int(test["patients"] - test["dm_patients"])
        if dm == 0 or no_dm == 0 or test["patients"] < MIN_TEST_PATIENTS:
            raise NpcError(f"dataset {d}: the test split holds {dm} DM and {no_dm} non-DM patients; every dataset "
                           f"needs at least {MIN_TEST_PATIENTS} test patients with both outcomes",
                           hint="raise split.test_fraction (--test-fraction) or use a bigger cohort")
        tdm = int(train["dm_patients"])
        if tdm == 0 or tdm == train["patients"]:
            raise NpcError(f"dataset {d}: the training split holds {tdm} DM and {int(train['patients'] - tdm)} "
                           "non-DM patients; a model needs both", hint="use a bigger or more balanced cohort")
        if batch > train["images"]:
            raise NpcError(f"profile {profile.name}: train.batch_size = {batch} is larger than dataset {d}'s "
                           f"{int(train['images'])} training images", hint="lower train.batch_size")


def dataset_counts(store: ImageStore, split: pd.Series) -> pd.DataFrame:
    """Images and patients per dataset and split (the same for both variants).

    Parameters
    ----------
    store : the image store
    split : patient_id -> ``train``/``test``

    Returns
    -------
    DataFrame, one row per dataset × split: ``images, patients, dm_patients``.
    """
    rows = []
    for name in DATASETS:
        view = store.index.loc[dataset_mask(store.index, name)].assign(split=lambda d: d.patient_id.map(split))
        for part in ("train", "test"):
            v = view[view.split == part]
            rows.append({"dataset": name, "split": part, "images": len(v), "patients": v.patient_id.nunique(),
                         "dm_patients": int(v.groupby("patient_id")["label"].first().sum()) if len(v) else 0})
    return pd.DataFrame(rows)


def open_prepared(runs_dir: RunLayout | str | Path) -> Prepared:
    """Reopen what :func:`prepare` wrote (split, image store) without rebuilding or re-reading
    the DICOM headers.

    Parameters
    ----------
    runs_dir : a prepared runs folder (``cohort.json``, ``split.csv``, the image store)

    Returns
    -------
    :class:`Prepared`
    """
    layout = RunLayout.of(runs_dir)
    store = open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False)
    return Prepared(layout.read_split(), store, layout)
