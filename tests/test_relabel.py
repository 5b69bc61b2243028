"""A relabelled image store: the same pixels (hard links), new labels, its own fingerprint, shared features."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from npc_lib.config import load_profile
from npc_lib.data.relabel import relabelled_store, share_features
from npc_lib.errors import NpcError
from npc_lib.learn.study import prepare

pytest.importorskip("keras")


def test_relabelled_store_shares_pixels_and_features(small_cohort, tmp_path, monkeypatch):
    from npc_lib.learn import features as features_mod
    profile = load_profile("smoke", {"weights": "none", "variants": ["intratumour"]})
    main = prepare(profile, small_cohort, tmp_path / "main", progress=False)
    main_feats = features_mod.extract_features(main.store, "efficientnet-b0", profile, tmp_path / "main" / "cache")
    labels = 1 - main.store.index.groupby("patient_id")["label"].first()
    store = relabelled_store(main.store, labels, tmp_path / "null" / "cache")
    assert store.fingerprint != main.store.fingerprint
    assert (store.index["label"] == 1 - main.store.index["label"]).all()
    assert store.index.drop(columns="label").equals(main.store.index.drop(columns="label"))
    for v in ("intratumour", "intra-peritumour"):
        np.testing.assert_array_equal(store.images(v), main.store.images(v))
        assert os.path.samefile(store.root / f"{v}.u8", main.store.root / f"{v}.u8")  # linked, not copied
    assert relabelled_store(main.store, labels, tmp_path / "null" / "cache").fingerprint == store.fingerprint

    assert share_features(main.store, tmp_path / "main" / "cache", store, tmp_path / "null" / "cache",
                          [main_feats["intratumour"].path.parent.name, "resnet50-32px-imagenet"]) == 1

    def no_backbone(*args, **kwargs):
        raise AssertionError("features were recomputed")
    monkeypatch.setattr(features_mod, "build_feature_extractor", no_backbone)
    feats = features_mod.extract_features(store, "efficientnet-b0", profile, tmp_path / "null" / "cache")
    np.testing.assert_array_equal(feats["intratumour"].values, main_feats["intratumour"].values)


def test_relabelling_refuses_missing_or_bad_labels(small_cohort, tmp_path):
    profile = load_profile("smoke", {"weights": "none"})
    main = prepare(profile, small_cohort, tmp_path, progress=False)
    labels = main.store.index.groupby("patient_id")["label"].first()
    with pytest.raises(NpcError, match=f"no label for patient {labels.index[0]}"):
        relabelled_store(main.store, labels.iloc[1:], tmp_path / "other")
    with pytest.raises(NpcError, match="0 or 1"):
        relabelled_store(main.store, labels + 1, tmp_path / "other")
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
    other = pd.Series(0, index=labels.index)
    store = relabelled_store(main.store, other.where(other.index != labels.index[0], 1), tmp_path / "other")
    with pytest.raises(NpcError, match="does not hold the images"):
        share_features(store, tmp_path / "other", main.store, tmp_path, ["efficientnet-b0-32px-random-seed42"])
