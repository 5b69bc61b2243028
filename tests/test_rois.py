"""ROI geometry pinned: peritumoural growth, centred padding, normalisation, Max tumour, views."""
import numpy as np
import pandas as pd
import pytest

from npc_lib.data.rois import (Geometry, dataset_mask, grow_pixels, mark_max_tumour, normalise, pad_to_canvas,
                          peritumoural_box, roi_image)


def test_peritumoural_box_uses_row_and_column_spacing_separately():
    # 3 mm at 0.8 mm/col -> 3.75 -> 4 px; at 0.5 mm/row -> 6 px
    assert peritumoural_box((100, 120, 140, 150), 0.5, 0.8, rows=512, cols=512) == (96, 114, 144, 156)
    # paper geometry: 230 mm / 512 px = 0.449 mm -> 6.68 -> 7 px per side
    assert grow_pixels(3.0, 230 / 512) == 7
    assert grow_pixels(3.0, 230 / 256) == 3


def test_peritumoural_box_is_clipped_to_the_image():
    assert peritumoural_box((2, 1, 60, 62), 1.0, 1.0, rows=64, cols=62) == (0, 0, 62, 64)


def test_padding_is_centred():
    img = np.ones((10, 6), np.float32)
    out = pad_to_canvas(img, 16)
    rows, cols = np.nonzero(out)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 12, 5, 10)


def test_large_crops_are_scaled_down_keeping_aspect():
    img = np.ones((40, 20), np.float32)
    out = pad_to_canvas(img, 16)
    rows, cols = np.nonzero(out > 0.5)
    assert rows.max() - rows.min() + 1 == 16 and cols.max() - cols.min() + 1 == 8
    assert cols.min() == 4


def test_normalisation_uses_that_crop_only():
    rng = np.random.default_rng(0)
    crop = rng.normal(100, 10, (20, 20))
    a, b = normalise(crop), normalise(crop * 7 + 300)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a.min() == 0 and a.max() == 1
    assert normalise(np.full((5, 5), 3.0)).max() == 0


def test_roi_image_shape_and_type():
    pixels = np.random.default_rng(1).uniform(0, 1000, (64, 64))
    img = roi_image(pixels, (10, 12, 30, 40), Geometry(canvas=48, input_size=32))
    assert img.shape == (32, 32) and img.dtype == np.uint8 and img.max() > 150
    assert img[0, 0] == 0  # zero padding in the corner


def _rois():
    rows = []
    for k, area_w in enumerate([10, 50, 30, 40, 20]):
        rows.append(("A", k, "npc", 0, 0, area_w, 10))
    rows += [("A", 1, "cmln", 0, 0, 99, 99), ("B", 0, "npc", 0, 0, 5, 5), ("B", 1, "npc", 0, 0, 5, 5)]
    return pd.DataFrame(rows, columns=["patient_id", "slice_index", "region", "x0", "y0", "x1", "y1"])


def test_max_tumour_picks_the_three_largest_primary_slices():
    r = _rois()
    m = mark_max_tumour(r)
    assert sorted(r.loc[m & (r.patient_id == "A"), "slice_index"]) == [1, 2, 3]
    assert not m[r.region == "cmln"].any()
    assert m[r.patient_id == "B"].sum() == 2  # fewer slices than 3: all of them


def test_dataset_views():
    r = _rois()
    r["is_max_tumour"] = mark_max_tumour(r)
    npc, cmln, both, mx = (dataset_mask(r, d) for d in ("NPC", "CMLN", "NPC-CMLN", "Max tumour"))
    assert (both == (npc | cmln)).all() and not (npc & cmln).any()
    assert (mx <= npc).all() and mx.sum() == 5
    with pytest.raises(KeyError):
        dataset_mask(r, "Tonsil")
