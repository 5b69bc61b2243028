"""rois-from-masks: the synthetic cohort's masks round-trip through NIfTI, NRRD, DICOM SEG and RTSTRUCT
and give exactly the rectangles of the masks' own 8-connected components."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from skimage.measure import find_contours

from npc_lib.cli import main
from npc_lib.data.dicom import read_series
from npc_lib.data.mask_import import (LPS_FROM_RAS, MaskError, Grid, parse_labels, rectangles, rois_from_masks)

nib = pytest.importorskip("nibabel")
nrrd = pytest.importorskip("nrrd")
REGIONS = {"npc": [1], "cmln": [3, 4]}


def _labels(cohort: Path, pid: str) -> tuple[np.ndarray, list[str]]:
    with np.load(cohort / "masks" / f"{pid}.npz") as z:
        return z["labels"], [str(u) for u in z["sop_instance_uids"]]


def _expected(cohort: Path) -> pd.DataFrame:
    rows = []
    for f in sorted((cohort / "masks").glob("*.npz")):
        labels, sops = _labels(cohort, f.stem)
        for region, values in REGIONS.items():
            for k in range(labels.shape[0]):
                rows += [(f.stem, sops[k], region, *b) for b in rectangles(np.isin(labels[k], values))]
    return _sorted(pd.DataFrame(rows, columns=["patient_id", "sop_instance_uid", "region", "x0", "y0", "x1", "y1"]))


def _sorted(t: pd.DataFrame) -> pd.DataFrame:
    return t.sort_values(list(t.columns)).reset_index(drop=True)


def _volume(cohort: Path, pid: str):
    """The patient's labels as a [col, row, slice] volume in the series' slice order, and its LPS affine."""
    labels, sops = _labels(cohort, pid)
    series = read_series(cohort / "dicom" / pid, load_pixels=False)
    order = [sops.index(u) for u in series.sop_instance_uids]
    grid = Grid.of(series)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1] = grid.col_step, grid.row_step
    affine[:3, 2] = grid.positions[1] - grid.positions[0]
    affine[:3, 3] = grid.positions[0]
    return labels[order].transpose(2, 1, 0).astype(np.uint8), affine, series


def _flip(vol, affine, axis):
    out = affine.copy()
    out[:3, 3] += affine[:3, axis] * (vol.shape[axis] - 1)
    out[:3, axis] = -affine[:3, axis]
    return np.flip(vol, axis=axis), out


def _write_nifti(cohort, folder, variant="plain", shift_mm=0.0):
    folder.mkdir()
    for f in sorted((cohort / "masks").glob("*.npz")):
        vol, aff, _ = _volume(cohort, f.stem)
        if variant == "ras_flipped":  # stored the way a RAS-oriented tool writes it
            vol, aff = _flip(vol, aff, 0)
            vol, aff = _flip(vol, aff, 1)
        if variant == "reversed_slices":
            vol, aff = _flip(vol, aff, 2)
        aff = aff.copy()
        aff[0, 3] += shift_mm
        nib.save(nib.Nifti1Image(np.ascontiguousarray(vol), LPS_FROM_RAS @ aff), str(folder / f"{f.stem}.nii.gz"))


def _write_nrrd(cohort, folder):
    folder.mkdir()
    for f in sorted((cohort / "masks").glob("*.npz")):
        vol, aff, _ = _volume(cohort, f.stem)
        nrrd.write(str(folder / f"{f.stem}.seg.nrrd"), vol, {"space": "left-posterior-superior",
                                                              "space directions": aff[:3, :3].T,
                                                              "space origin": aff[:3, 3]})


def _sources(cohort, pid, series):
    by_uid = {}
    for p in (cohort / "dicom" / pid).iterdir():
        ds = pydicom.dcmread(p)
        by_uid[str(ds.SOPInstanceUID)] = ds
    return [by_uid[u] for u in series.sop_instance_uids]


def _write_seg(cohort, folder):
    hd = pytest.importorskip("highdicom")
    from pydicom.sr.codedict import codes
    folder.mkdir()
    for f in sorted((cohort / "masks").glob("*.npz")):
        labels, sops = _labels(cohort, f.stem)
        series = read_series(cohort / "dicom" / f.stem, load_pixels=False)
        labels = labels[[sops.index(u) for u in series.sop_instance_uids]]
        numbers = [n for n in range(1, 6)]
        pixels = np.stack([labels == n for n in numbers], axis=-1)
        desc = [hd.seg.SegmentDescription(segment_number=n, segment_label=f"label {n}",
                                          segmented_property_category=codes.SCT.Tissue,
                                          segmented_property_type=codes.SCT.Tissue,
                                          algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
                for n in numbers]
        seg = hd.seg.Segmentation(source_images=_sources(cohort, f.stem, series), pixel_array=pixels,
                                  segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=desc,
                                  series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
                                  instance_number=1, manufacturer="test", manufacturer_model_name="test",
                                  software_versions="1", device_serial_number="1", omit_empty_frames=True)
        seg.save_as(folder / f"{f.stem}.dcm")


def _write_rtstruct(cohort, folder):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid
    folder.mkdir()
    for f in sorted((cohort / "masks").glob("*.npz")):
        labels, sops = _labels(cohort, f.stem)
        series = read_series(cohort / "dicom" / f.stem, load_pixels=False)
        grid = Grid.of(series)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.Modality = RTStructureSetStorage, "RTSTRUCT"
        ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
        for n in range(1, 6):
            roi = Dataset()
            roi.ROINumber, roi.ROIName = n, f"label {n}"
            ds.StructureSetROISequence.append(roi)
            rc = Dataset()
            rc.ReferencedROINumber, rc.ContourSequence = n, Sequence()
            for uid in series.sop_instance_uids:
                m = np.pad(labels[sops.index(uid)] == n, 1)
                k = series.sop_instance_uids.index(uid)
                for line in find_contours(m.astype(float), 0.5, fully_connected="high"):
                    r, c = line[:, 0] - 1, line[:, 1] - 1
                    pts = grid.positions[k] + np.outer(c, grid.col_step) + np.outer(r, grid.row_step)
                    item = Dataset()
                    item.ContourGeometricType = "CLOSED_PLANAR"
                    item.NumberOfContourPoints = len(pts)
                    item.ContourData = [round(float(v), 4) for v in pts.ravel()]
                    img = Dataset()
                    img.ReferencedSOPInstanceUID = uid
                    item.ContourImageSequence = Sequence([img])
                    rc.ContourSequence.append(item)
            ds.ROIContourSequence.append(rc)
        ds.save_as(folder / f"{f.stem}.dcm", enforce_file_format=True)


@pytest.mark.parametrize("fmt,writer", [
    ("nifti", lambda c, d: _write_nifti(c, d)),
    ("nifti", lambda c, d: _write_nifti(c, d, "ras_flipped")),
    ("nifti", lambda c, d: _write_nifti(c, d, "reversed_slices")),
    ("nrrd", _write_nrrd), ("seg", _write_seg), ("rtstruct", _write_rtstruct),
], ids=["nifti", "nifti_ras_flipped", "nifti_reversed_slices", "nrrd", "seg", "rtstruct"])
def test_masks_round_trip_to_the_exact_rectangles(tiny_cohort, tmp_path, fmt, writer):
    writer(tiny_cohort, tmp_path / "masks")
    out = tmp_path / "rois.csv"
    table = rois_from_masks(tiny_cohort, tmp_path / "masks", fmt, REGIONS, out, progress=False)
    expected = _expected(tiny_cohort)
    assert len(expected) > 20 and set(expected["region"]) == {"npc", "cmln"}
    pd.testing.assert_frame_equal(_sorted(table), expected, check_dtype=False)
    pd.testing.assert_frame_equal(_sorted(pd.read_csv(out)), expected, check_dtype=False)


def test_a_label_map_off_the_series_grid_is_an_error_naming_patient_and_offset(tiny_cohort, tmp_path):
    _write_nifti(tiny_cohort, tmp_path / "masks", shift_mm=0.6)
    out = tmp_path / "rois.csv"
    with pytest.raises(MaskError, match=r"patient P0001: slice 0 of the series lies 0\.60 mm"):
        rois_from_masks(tiny_cohort, tmp_path / "masks", "nifti", REGIONS, out, progress=False)
    assert not out.exists()  # nothing half-written


def test_the_command_writes_rois_csv_and_reports(tiny_cohort, tmp_path, capsys):
    _write_nrrd(tiny_cohort, tmp_path / "masks")
    out = tmp_path / "rois.csv"
    code = main(["rois-from-masks", str(tiny_cohort), "--masks", str(tmp_path / "masks"), "--format", "nrrd",
                 "--label", "npc=1", "--label", "cmln=3,4", "--out", str(out)])
    assert code == 0 and "rectangles" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == len(_expected(tiny_cohort))


def test_label_specifications_are_checked():
    assert parse_labels(["npc=1,2", "cmln=3,4,5"]) == {"npc": [1, 2], "cmln": [3, 4, 5]}
    assert parse_labels(["npc=GTVp"]) == {"npc": ["GTVp"]}
    with pytest.raises(Exception, match="expected npc=VALUES"):
        parse_labels(["tumour=1"])


def test_rectangles_are_tight_half_open_and_8_connected():
    m = np.zeros((10, 10), bool)
    m[2, 2] = m[3, 3] = True      # diagonal neighbours: one component under 8-connectivity
    m[7:9, 5:8] = True
    assert rectangles(m) == [(2, 2, 4, 4), (5, 7, 8, 9)]
