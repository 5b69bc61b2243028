"""What real PACS and viewer exports hold: skipped with a note, chosen explicitly, or refused precisely.

Real files from pydicom's test data stand in wherever one has the property (a DICOMDIR, a
structured report, an RT structure set, a segmentation, an RGB secondary capture, a MONOCHROME1
radiograph, a header without a transfer syntax, a file without the preamble).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from npc_lib.cli import main
from npc_lib.data.cohort import load_cohort
from npc_lib.data.dicom import Skipped, _read_file, read_series
from npc_lib.errors import CohortError, DicomError

PID = "P0003"


def _real(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} not available")
    return Path(path)


def _folder(cohort: Path) -> Path:
    return cohort / "dicom" / PID


def _slices(cohort: Path) -> list[Path]:
    return sorted(_folder(cohort).glob("*.dcm"))


def _validate_with_note(cohort: Path, text: str):
    c = load_cohort(cohort, progress=False)
    notes = c.notes
    assert c.summary()["patients"] == 12 and c.summary()["excluded_patients"] == 0
    mine = notes[notes["patient_id"] == PID]["note"].tolist()
    assert any(text in n for n in mine), mine
    assert any(step.startswith("kept, with files skipped") for step, _ in c.flow)
    return c


@pytest.mark.parametrize("name,content,text", [
    ("README.txt", b"Exported by the PACS\n", "README.txt: not a DICOM file"),
    (".DS_Store", b"\x00\x00\x00\x01Bud1", ".DS_Store: not an image file"),
    ("empty.dcm", b"", "empty.dcm: empty file (0 bytes)"),
], ids=["readme", "ds_store", "zero_bytes"])
def test_non_image_files_are_skipped_with_a_note(cohort_copy, name, content, text):
    (_folder(cohort_copy) / name).write_bytes(content)
    _validate_with_note(cohort_copy, text)


def test_a_real_dicomdir_is_skipped(cohort_copy):
    shutil.copy(_real("DICOMDIR"), _folder(cohort_copy) / "DICOMDIR")
    _validate_with_note(cohort_copy, "DICOMDIR: not an image file")


@pytest.mark.parametrize("name,modality", [("reportsi.dcm", "SR"), ("rtstruct.dcm", "RTSTRUCT"),
                                           ("liver.dcm", "SEG")])
def test_non_image_dicom_objects_are_skipped(cohort_copy, name, modality):
    shutil.copy(_real(name), _folder(cohort_copy) / f"extra_{name}")
    _validate_with_note(cohort_copy, f"({modality})")


def test_a_localizer_in_the_series_is_skipped(cohort_copy):
    ds = pydicom.dcmread(_slices(cohort_copy)[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal, as scouts are
    ds.save_as(_folder(cohort_copy) / "scout.dcm")
    _validate_with_note(cohort_copy, "scout.dcm: localizer / scout image")


def _second_series(cohort: Path) -> str:
    uid = generate_uid()
    for i, f in enumerate(_slices(cohort)):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesDescription = uid, "AX T2 (second series)"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(_folder(cohort) / f"t2_{i}.dcm")
    return uid


def test_several_series_need_a_choice_that_names_them(cohort_copy):
    other = _second_series(cohort_copy)
    with pytest.raises(CohortError) as err:
        load_cohort(cohort_copy, progress=False)
    assert "holds 2 image series" in str(err.value) and other in str(err.value)
    assert "AX T2 (second series)" in str(err.value) and "series.csv (patient_id, series_instance_uid)" in str(err.value)


def test_series_csv_chooses_the_series(cohort_copy):
    _second_series(cohort_copy)
    first = pydicom.dcmread(_slices(cohort_copy)[0]).SeriesInstanceUID
    pd.DataFrame({"patient_id": [PID], "series_instance_uid": [first]}).to_csv(cohort_copy / "series.csv",
                                                                              index=False)
    c = _validate_with_note(cohort_copy, "not the chosen series")
    assert c.series[PID].series_instance_uid == first and c.load_series(PID).pixels.shape[0] == 6


def test_series_csv_naming_a_missing_series_is_an_error(cohort_copy):
    pd.DataFrame({"patient_id": [PID], "series_instance_uid": ["1.2.3.999"]}).to_csv(cohort_copy / "series.csv",
                                                                                    index=False)
    with pytest.raises(CohortError, match=r"series.csv names SeriesInstanceUID 1.2.3.999"):
        load_cohort(cohort_copy, progress=False)


def test_series_csv_with_an_unknown_patient_is_an_error(cohort_copy):
    pd.DataFrame({"patient_id": ["P9999"], "series_instance_uid": ["1.2.3"]}).to_csv(cohort_copy / "series.csv",
                                                                                    index=False)
    with pytest.raises(CohortError, match=r"series.csv line 2: unknown patient 'P9999'"):
        load_cohort(cohort_copy, progress=False)


def test_a_missing_transfer_syntax_is_inferred_for_uncompressed_data(cohort_copy):
    before = read_series(_folder(cohort_copy)).pixels
    f = _slices(cohort_copy)[2]
    ds = pydicom.dcmread(f)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(f, enforce_file_format=False)
    assert "TransferSyntaxUID" not in pydicom.dcmread(f).file_meta
    c = _validate_with_note(cohort_copy, "no Transfer Syntax UID; read as Explicit VR Little Endian")
    assert np.array_equal(c.load_series(PID).pixels, before)


def test_a_real_header_without_transfer_syntax_is_read():
    ds, notes = _read_file(_real("meta_missing_tsyntax.dcm"))
    assert notes and "no Transfer Syntax UID" in notes[0]
    assert ds.file_meta.TransferSyntaxUID in (pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian)


def test_a_slice_without_preamble_and_file_meta_is_still_read(cohort_copy):
    """Older exports write bare datasets (no 128-byte preamble, no file meta): read, and noted."""
    f = _slices(cohort_copy)[1]
    ds = pydicom.dcmread(f)
    ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
    ds.save_as(f, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert f.read_bytes()[128:132] != b"DICM"
    _validate_with_note(cohort_copy, "read as Implicit VR Little Endian")


def test_a_real_bare_dataset_without_an_image_is_skipped(tmp_path):
    with pytest.raises(Skipped, match="no_meta.dcm"):
        _read_file(_real("no_meta.dcm"))


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "US1_UNCR.dcm"])
def test_real_colour_images_are_refused_precisely(cohort_copy, name, capsys):
    shutil.copy(_real(name), _folder(cohort_copy) / f"capture_{name}")
    with pytest.raises(DicomError, match=r"colour image \(PhotometricInterpretation RGB, 3 samples per pixel\)"):
        read_series(_folder(cohort_copy))
    assert main(["validate", str(cohort_copy)]) == 2
    err = capsys.readouterr().err
    assert f"capture_{name}: colour image" in err and "Traceback" not in err


def _as_monochrome1(cohort: Path) -> np.ndarray:
    original = read_series(_folder(cohort)).pixels
    top = int(original.max() + original.min())
    for f in _slices(cohort):
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.PixelData = (top - ds.pixel_array.astype(np.int64)).astype("<u2").tobytes()
        ds.save_as(f)
    return original


def test_monochrome1_is_inverted_to_monochrome2(cohort_copy):
    original = _as_monochrome1(cohort_copy)
    c = _validate_with_note(cohort_copy, "MONOCHROME1 slices inverted")
    assert np.array_equal(c.load_series(PID).pixels, original)


def test_a_real_monochrome1_image_is_accepted():
    ds, notes = _read_file(_real("RG1_UNCR.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1" and notes == []


def test_a_series_mixing_monochrome1_and_2_is_refused(cohort_copy):
    f = _slices(cohort_copy)[0]
    ds = pydicom.dcmread(f)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(f)
    with pytest.raises(DicomError, match="mixes MONOCHROME1 and MONOCHROME2"):
        read_series(_folder(cohort_copy))


def test_a_folder_with_nothing_but_exports_is_a_clear_error(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here")
    shutil.copy(_real("reportsi.dcm"), tmp_path / "report.dcm")
    with pytest.raises(DicomError, match=r"contains no DICOM image \(2 file\(s\) skipped"):
        read_series(tmp_path)


def test_an_unexpected_failure_is_one_line_without_a_traceback(tiny_cohort, monkeypatch, capsys):
    import npc_lib.data.cohort as cohort_module

    def boom(*args, **kwargs):
        raise ValueError("a header value pydicom could not convert")

    monkeypatch.setattr(cohort_module, "read_series", boom)
    assert main(["validate", str(tiny_cohort)]) == 1
    err = capsys.readouterr().err
    assert "\nerror: unexpected ValueError: a header value" in "\n" + err.split("\r")[-1] and "Traceback" not in err
    assert "--debug" in err
    with pytest.raises(ValueError):
        main(["--debug", "validate", str(tiny_cohort)])


def test_skipped_is_not_an_error():
    assert not issubclass(Skipped, CohortError)
