"""A second synthetic centre: another scanner, protocol and case mix, the same planted biology."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from npc_lib.synth import SynthConfig, generate_cohort
from npc_lib.synth.centres import CENTRES, centre
from npc_lib.synth.clinical import RISK_WEIGHTS, draw_cohort


def test_centre_b_shifts_the_case_mix_and_keeps_the_biology():
    a = draw_cohort(20000, seed=1)
    b = draw_cohort(20000, seed=2, centre=centre("B"))
    early = lambda d: d.clinical["t_stage"].isin(["T1", "T2"]).mean()  # noqa: E731
    assert early(b) > early(a) + 0.1 and (b.clinical["n_stage"] == "N3").mean() < (a.clinical["n_stage"] == "N3").mean()
    assert b.clinical["dm"].mean() < a.clinical["dm"].mean() - 0.05  # fewer metastases from the earlier mix
    # the same risk model and intercept: DM risk given the same latent risk is the same
    assert abs(b.truth.attrs["threshold"] - a.truth.attrs["threshold"]) < 0.05
    for d in (a, b):
        parts = [c for c in d.truth.columns if c.startswith("risk_") and c != "risk_probability"]
        np.testing.assert_allclose(d.truth[parts].sum(axis=1), d.truth["linear_risk"])
        assert np.allclose(d.truth["risk_node_ene"], RISK_WEIGHTS["node_ene"] * d.truth["node_ene"])
    assert abs(a.planted_auc["full_risk"] - b.planted_auc["full_risk"]) < 0.03
    assert b.clinical["patient_id"].iloc[0] == "B00001" and a.clinical["patient_id"].iloc[0] == "P00001"


def test_centre_b_images_differ_where_a_scanner_differs(tmp_path):
    ra = generate_cohort(tmp_path / "a", SynthConfig(patients=12, matrix=48, slices=6, seed=3), progress=False)
    rb = generate_cohort(tmp_path / "b", SynthConfig.for_centre("B", patients=12, matrix=48, slices=6, seed=3),
                         progress=False)
    ma, mb = ra["measured"], rb["measured"]
    assert mb["pixel_spacing_mm"] == pytest.approx(200 / 48, abs=1e-4) and ma["pixel_spacing_mm"] == pytest.approx(230 / 48, abs=1e-4)
    assert mb["slice_mm"] == 4.0 and ma["slice_mm"] == 5.0
    assert mb["mean_stored_intensity"] > 1.4 * ma["mean_stored_intensity"] and mb["air_sd_stored"] > 1.5 * ma["air_sd_stored"]
    assert rb["centre"]["name"] == "B" and rb["risk_model"]["feature_weights"] == ra["risk_model"]["feature_weights"]
    ds = pydicom.dcmread(next((tmp_path / "b" / "dicom" / "B0001").iterdir()))
    assert float(ds.SliceThickness) == 4.0 and float(ds.PixelSpacing[0]) == pytest.approx(200 / 48)
    uids = lambda root: {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID  # noqa: E731
                         for f in (root / "dicom").rglob("*") if f.is_file()}
    assert not uids(tmp_path / "a") & uids(tmp_path / "b")  # its own DICOM UIDs
    assert json.loads((tmp_path / "b" / "generation_report.json").read_text())["measured"]["centre"] == "B"


def test_an_unknown_centre_is_named():
    with pytest.raises(ValueError, match="unknown centre 'C'.*A, B"):
        SynthConfig(centre="C").validate()
    assert set(CENTRES) == {"A", "B"} and SynthConfig.for_centre("A") == SynthConfig()
