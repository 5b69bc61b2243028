"""Synthetic cohort: cohort shape, planted signal, DICOM validity, determinism."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy.stats import spearmanr

from npc_lib.errors import NpcError
from npc_lib.data.staging import overall_stage
from npc_lib.synth import SynthConfig, generate_cohort
from npc_lib.synth.clinical import PAPER_N_COUNTS, PAPER_T_COUNTS, draw_cohort


@pytest.fixture(scope="module")
def paper_draw():
    return draw_cohort()  # the defaults: 441 patients, seed 42, scenario paper


def test_cohort_shape_matches_the_paper(paper_draw):
    c = paper_draw.clinical
    assert len(c) == 441
    assert abs(c["dm"].mean() - 114 / 441) <= 0.03
    t_share = c["t_stage"].value_counts(normalize=True).sort_index().to_numpy()
    n_share = c["n_stage"].value_counts(normalize=True).sort_index().to_numpy()
    assert np.abs(t_share - PAPER_T_COUNTS / PAPER_T_COUNTS.sum()).max() < 0.06
    assert np.abs(n_share - PAPER_N_COUNTS / PAPER_N_COUNTS.sum()).max() < 0.06
    assert all(overall_stage(t, n) == s for t, n, s in zip(c.t_stage, c.n_stage, c.overall_stage))
    assert set(c["sex"]) == {"M", "F"} and set(c["treatment"]) == {"CCR", "IC+CCR"}


def test_planted_signal_meets_the_targets(paper_draw):
    o = paper_draw.planted_auc
    assert 0.60 <= o["stage_iv_vs_i_iii"] <= 0.72
    assert o["full_risk"] >= 0.88
    assert o["cmln_features"] > o["npc_features"]
    assert o["image_with_peritumoural"] - o["image_intratumoural_only"] >= 0.03


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_null_scenario_has_no_signal(seed):
    o = draw_cohort(seed=seed, scenario="null").planted_auc
    assert all(abs(v - 0.5) < 0.1 for v in o.values()), o


def test_truth_is_consistent_with_clinical(paper_draw):
    t = paper_draw.truth
    n0 = t["n_stage"] == "N0"
    assert (t.loc[n0, ["node_necrosis", "node_ene"]] == 0).all().all()
    assert (t["dm"] == paper_draw.clinical["dm"]).all()


def test_written_cohort_is_valid_dicom(small_cohort):
    clinical = pd.read_csv(small_cohort / "clinical.csv")
    rois = pd.read_csv(small_cohort / "rois.csv")
    report = json.loads((small_cohort / "generation_report.json").read_text())
    assert report["patients"] == len(clinical) == 40
    pid = clinical["patient_id"].iloc[0]
    files = sorted((small_cohort / "dicom" / pid).iterdir())
    assert len(files) == 8
    sops = set()
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert float(ds.PixelSpacing[0]) == pytest.approx(230 / 64)
        assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.shape == (64, 64)
        assert str(ds.PatientName) == f"SYNTH^{pid}" and ds.PatientBirthDate and ds.AccessionNumber
        assert float(ds.SliceThickness) == 5.0
        sops.add(ds.SOPInstanceUID)
    assert len(sops) == 8
    n0 = set(clinical.loc[clinical["n_stage"] == "N0", "patient_id"])
    assert not rois[(rois["region"] == "cmln") & rois["patient_id"].isin(n0)].shape[0]
    nodal = set(clinical.loc[clinical["n_stage"] != "N0", "patient_id"])
    assert nodal <= set(rois.loc[rois["region"] == "cmln", "patient_id"])
    assert set(clinical["patient_id"]) == set(rois.loc[rois["region"] == "npc", "patient_id"])


def test_rois_are_tight_boxes_around_the_masks(small_cohort):
    """Each ROI overlaps its lesion's mask and sits within the annotator jitter of it."""
    rois = pd.read_csv(small_cohort / "rois.csv")
    jitter_px = int(round(2.5 / (230 / 64)))
    for pid, group in list(rois.groupby("patient_id"))[:10]:
        m = np.load(small_cohort / "masks" / f"{pid}.npz")
        labels, uids = m["labels"], list(m["sop_instance_uids"])
        for _, r in group.iterrows():
            lab = labels[uids.index(r.sop_instance_uid)]
            core = np.isin(lab, (1,) if r.region == "npc" else (3, 4))
            inside = core[r.y0:r.y1, r.x0:r.x1].sum()
            assert inside > 0
            # grown by the jitter, the box holds the lesion's pixels near it
            y0, x0 = max(0, r.y0 - jitter_px - 1), max(0, r.x0 - jitter_px - 1)
            assert core[y0:r.y1 + jitter_px + 1, x0:r.x1 + jitter_px + 1].sum() >= inside


def test_planted_image_features_are_visible(small_cohort):
    """Necrosis darkens nodes; ENE and infiltration widen the peritumoural label area."""
    truth = pd.read_csv(small_cohort / "truth.csv").set_index("patient_id")
    rows = []
    for pid in truth.index:
        m = np.load(small_cohort / "masks" / f"{pid}.npz")["labels"]
        node = np.isin(m, (3, 4)).sum()
        rows.append({"pid": pid, "nec_frac": (m == 4).sum() / node if node else np.nan,
                     "ene": (m == 5).sum() / node if node else np.nan,
                     "inf": (m == 2).sum() / max(1, (m == 1).sum())})
    f = pd.DataFrame(rows).set_index("pid").join(truth)
    nodal = f.dropna(subset=["nec_frac"])
    assert spearmanr(nodal["nec_frac"], nodal["node_necrosis"])[0] > 0.6
    assert spearmanr(nodal["ene"], nodal["node_ene"])[0] > 0.6
    assert spearmanr(f["inf"], f["npc_infiltration"])[0] > 0.6


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            if p.suffix == ".dcm":
                ds = pydicom.dcmread(p)
                data = ds.PixelData + str(ds.SOPInstanceUID).encode()
            else:
                data = p.read_bytes()
            out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def test_same_seed_gives_identical_bytes(tmp_path):
    cfg = SynthConfig(patients=10, matrix=40, slices=5, seed=5)
    generate_cohort(tmp_path / "a", cfg, jobs=1, progress=False)
    generate_cohort(tmp_path / "b", cfg, jobs=2, progress=False)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db
    for name in ("clinical.csv", "rois.csv", "truth.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    generate_cohort(tmp_path / "c", SynthConfig(patients=10, matrix=40, slices=5, seed=6), progress=False)
    assert _digest(tmp_path / "c") != da


def test_existing_output_is_never_clobbered(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(NpcError, match="not empty"):
        generate_cohort(out, SynthConfig(patients=10, matrix=40, slices=5), progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]  # no partial folder left behind


def test_bad_config_is_a_clear_error():
    with pytest.raises(NpcError, match="--matrix"):
        SynthConfig(matrix=8).validate()


@pytest.mark.parametrize("seed,matrix", [(0, 48), (1, 96), (2, 160), (3, 256)])
def test_peritumoural_signal_lies_outside_the_drawn_rectangles(tmp_path, seed, matrix):
    """≤ 20 % of the planted rim pixels inside the rectangles as drawn, ≥ 80 % inside them grown by
    3 mm (DESIGN §4), recounted from the written masks and rois.csv, and reported by the generator."""
    from npc_lib.synth.audit import cohort_rim_shares
    out = tmp_path / "c"
    report = generate_cohort(out, SynthConfig(patients=12, matrix=matrix, slices=6, seed=seed), progress=False)
    measured = cohort_rim_shares(out)
    for region in ("npc", "cmln"):
        m = measured[region]
        if not m["pixels"]:
            continue
        assert m["share_inside_drawn"] <= 0.20 and m["share_inside_grown"] >= 0.80, (region, m)
        assert report["peritumoural_rim"][region]["pixels"] == m["pixels"]
    assert measured["npc"]["pixels"] > 0 and measured["cmln"]["pixels"] > 0
    leak = report["rim_intensity_leak"]
    assert leak["patients"] > 0 and leak["mean_abs_difference_sd"] <= 0.01 and leak["share_over_half_sd"] <= 0.001


@pytest.mark.parametrize("matrix", [64, 96, 256])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_strands_change_no_pixel_inside_the_drawn_rectangles(seed, matrix):
    """Rendered with strands on and off (same random stream), the drawn rectangles are unchanged
    (mean <= 0.01 noise SD, <= 0.1 % of pixels over 0.5 SD) while the ring just outside them moves."""
    from npc_lib.synth.generate import FEATURES, _render_patient, rim_intensity_leak
    cfg = SynthConfig(patients=24, matrix=matrix, slices=4, seed=seed)
    d = draw_cohort(cfg.patients, cfg.seed, cfg.scenario)
    records = d.clinical.merge(d.truth[["patient_id", *FEATURES]], on="patient_id").to_dict("records")
    rim = [i for i, r in enumerate(records) if any(a.rim_pixels > 0 for a in _render_patient(cfg, i, r)[4])]
    leak = rim_intensity_leak(cfg, records, rim)
    assert leak["patients"] == min(20, len(rim)) >= 15
    assert leak["mean_abs_difference_sd"] <= 0.01 and leak["share_over_half_sd"] <= 0.001, leak
    assert leak["ring_outside_mean_abs_difference_sd"] > 0.1, leak  # the strands are there, outside


def test_rim_audit_counts_pixels_inside_a_rectangle():
    """The audit itself: a rim pixel inside a drawn box counts as inside (so a bad generator fails)."""
    from npc_lib.synth.audit import rim_counts
    labels = np.zeros((1, 20, 20), np.uint8)
    labels[0, 5, 5] = 2     # inside the drawn box
    labels[0, 5, 12] = 2    # outside it, within 2 px
    labels[0, 5, 18] = 2    # outside both
    rois = pd.DataFrame({"slice_index": [0], "region": ["npc"], "x0": [3], "y0": [3], "x1": [10], "y1": [10]})
    c = rim_counts(labels, rois, grow=3)["npc"]
    assert c == {"pixels": 3, "inside_drawn": 1, "inside_grown": 2}


def test_features_vary_between_nodes_and_slices(small_cohort):
    """A patient's nodes differ (a spared node beside a necrotic one occurs), and ENE strands vary by slice."""
    rt = pd.read_csv(small_cohort / "truth_rois.csv")
    rows = pd.read_csv(small_cohort / "rois.csv")
    assert len(rt) == len(rows) and (rt[rows.columns] == rows).all().all()  # one truth row per rectangle
    nodes = rt[rt["region"] == "cmln"].groupby(["patient_id", "lesion"])["core_feature"].first().reset_index()
    per_patient = nodes.groupby("patient_id")["core_feature"].agg(["min", "max", "size"])
    multi = per_patient[per_patient["size"] > 1]
    assert len(multi) and (multi["max"] - multi["min"] > 0.05).any()
    ene = rt[(rt["region"] == "cmln") & (rt["margin_feature"] > 0)].groupby(["patient_id", "lesion"])["margin_feature"]
    assert (ene.nunique() > 1).any()  # the same node shows different strand amounts on its slices
    assert {"risk_stage", "risk_core", "risk_margin"} <= set(rt.columns)


def test_series_description_matches_the_contrast(small_cohort):
    """The phantom is a T1 post-contrast image without fat suppression (fat is brightest)."""
    pid = pd.read_csv(small_cohort / "clinical.csv")["patient_id"].iloc[0]
    ds = pydicom.dcmread(next((small_cohort / "dicom" / pid).iterdir()))
    assert "T1" in ds.SeriesDescription and "FS" not in ds.SeriesDescription.split()
