"""Patient-level train/test split (stratified by DM, seeded; or fixed by a ``split`` column)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from npc_lib.atomic import write_csv
from npc_lib.errors import CohortError


def patient_split(clinical: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2) -> pd.Series:
    """Return a Series patient_id → "train"/"test".

    Uses the clinical table's ``split`` column when present (every row must say train or
    test); otherwise a stratified 4:1 split by ``dm`` with ``seed``.

    Parameters
    ----------
    clinical : the clinical table (``patient_id, dm``, optionally ``split``)
    seed : split seed
    test_fraction : share of patients in the test set

    Returns
    -------
    Series patient_id -> ``train``/``test``.
    """
    ids = clinical["patient_id"].to_numpy()
    if "split" in clinical.columns:
        split = clinical["split"].astype(str).str.lower().to_numpy()
        bad = ~np.isin(split, ["train", "test"])
        if bad.any():
            raise CohortError(f"split column: patient {ids[bad][0]} has {split[bad][0]!r}; expected train or test")
        result = pd.Series(split, index=ids, name="split")
    else:
        train, test = train_test_split(ids, test_size=test_fraction, random_state=seed,
                                       stratify=clinical["dm"].to_numpy())
        result = pd.Series("train", index=ids, name="split")
        result[test] = "test"
    assert_disjoint(result)
    if (result == "test").sum() == 0 or (result == "train").sum() == 0:
        raise CohortError("the split leaves the train or the test set empty")
    return result


def study_split(clinical: pd.DataFrame, settings, path: Path | None = None) -> pd.Series:
    """The study's patient split (``settings``: the profile's ``split``: seed and test fraction),
    written to ``path`` (the run's ``split.csv``) when given; every other reader reads that file.

    Parameters
    ----------
    clinical : the clinical table
    settings : an object with ``seed`` and ``test_fraction``
    path : where to write it

    Returns
    -------
    Series patient_id -> ``train``/``test``.
    """
    split = patient_split(clinical, seed=int(settings.seed), test_fraction=float(settings.test_fraction))
    if path is not None:
        write_split(path, split)
    return split


def write_split(path: Path, split: pd.Series) -> None:
    """Write a split as ``split.csv`` (``patient_id, split``), atomically."""
    write_csv(path, split.rename_axis("patient_id").reset_index())


def assert_disjoint(split: pd.Series) -> None:
    """A patient can never be in both train and test (index = patient_id)."""
    if split.index.duplicated().any():
        dup = split.index[split.index.duplicated()][0]
        raise AssertionError(f"patient {dup} appears more than once in the split")
    train = set(split.index[split == "train"])
    test = set(split.index[split == "test"])
    if train & test:
        raise AssertionError(f"patients in both train and test: {sorted(train & test)[:5]}")


def patient_folds(clinical: pd.DataFrame, k: int = 5, seed: int = 42) -> pd.Series:
    """Stratified k-fold assignment by patient (fold number 0..k-1), for repeated CV."""
    ids = clinical["patient_id"].to_numpy()
    folds = pd.Series(-1, index=ids, name="fold")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(skf.split(ids, clinical["dm"].to_numpy())):
        folds.iloc[test] = f
    return folds
