"""Image store: built once, reused when unchanged, rebuilt when inputs change or it is damaged."""
import shutil

import numpy as np
import pandas as pd
import pytest

from npc_lib.data.cache import CacheError, build_image_store, open_image_store
from npc_lib.data.cohort import load_cohort
from npc_lib.data.rois import Geometry, roi_image

GEO = Geometry(canvas=32, input_size=32)


@pytest.fixture
def store_and_cohort(cohort_copy, tmp_path):
    cohort = load_cohort(cohort_copy, progress=False)
    return build_image_store(cohort, GEO, tmp_path / "cache", progress=False), cohort


def test_store_holds_every_roi_in_both_variants(store_and_cohort):
    store, cohort = store_and_cohort
    assert store.manifest["count"] == len(cohort.rois) == len(store.index)
    assert set(store.index.patient_id) == set(cohort.clinical.patient_id)
    r = store.index.iloc[5]
    pixels = cohort.load_series(r.patient_id).pixels[r.slice_index]
    np.testing.assert_array_equal(store.images("intratumour")[5], roi_image(pixels, (r.x0, r.y0, r.x1, r.y1), GEO))
    np.testing.assert_array_equal(store.images("intra-peritumour")[5], roi_image(pixels, (r.px0, r.py0, r.px1, r.py1), GEO))
    assert ((store.index.px1 - store.index.px0) >= (store.index.x1 - store.index.x0)).all()
    labels = cohort.clinical.set_index("patient_id")["dm"]
    assert (store.index.label == store.index.patient_id.map(labels)).all()


def test_unchanged_input_is_reused(store_and_cohort, tmp_path):
    store, cohort = store_and_cohort
    mtime = (store.root / "intratumour.u8").stat().st_mtime_ns
    again = build_image_store(cohort, GEO, tmp_path / "cache", progress=False)
    assert again.root == store.root and (again.root / "intratumour.u8").stat().st_mtime_ns == mtime


def test_changed_input_or_geometry_rebuilds(store_and_cohort, tmp_path):
    store, cohort = store_and_cohort
    other = build_image_store(cohort, Geometry(canvas=32, input_size=32, peritumour_mm=5.0), tmp_path / "cache",
                              progress=False)
    assert other.fingerprint != store.fingerprint
    rois = pd.read_csv(cohort.root / "rois.csv")
    rois.iloc[1:].to_csv(cohort.root / "rois.csv", index=False)
    smaller = build_image_store(load_cohort(cohort.root, progress=False), GEO, tmp_path / "cache", progress=False)
    assert smaller.fingerprint != store.fingerprint and smaller.manifest["count"] == store.manifest["count"] - 1


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "no_manifest"])
def test_damaged_store_is_detected_and_rebuilt(store_and_cohort, tmp_path, damage):
    store, cohort = store_and_cohort
    good = np.array(store.images("intra-peritumour"))
    path = store.root / "intra-peritumour.u8"
    if damage == "flip_byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        (store.root / "manifest.json").unlink()
    with pytest.raises(CacheError):
        open_image_store(store.root)
    rebuilt = build_image_store(cohort, GEO, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(np.array(rebuilt.images("intra-peritumour")), good)


def test_interrupted_build_leaves_no_store(cohort_copy, tmp_path, monkeypatch):
    cohort = load_cohort(cohort_copy, progress=False)
    import npc_lib.data.cache as cache

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "roi_image", boom)
    with pytest.raises(KeyboardInterrupt):
        build_image_store(cohort, GEO, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []
    shutil.rmtree(tmp_path / "cache")
