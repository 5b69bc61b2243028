"""Cohort ingest: a good cohort validates; each malformed input gives a specific error."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from npc_lib.cli import main
from npc_lib.data.cohort import load_cohort
from npc_lib.errors import CohortError


def _files(cohort: Path, pid: str) -> list[Path]:
    return sorted((cohort / "dicom" / pid).iterdir())


def _edit_csv(path: Path, fn):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    changed = fn(df)
    (df if changed is None else changed).to_csv(path, index=False)


def _set_cell(path: Path, row: int, column, value):
    """Set one cell; ``value`` may be a function of the table (to copy another cell)."""
    def f(d):
        d.loc[row, column] = value(d) if callable(value) else value
    _edit_csv(path, f)


def truncated_dicom(c):
    f = _files(c, "P0002")[2]
    f.write_bytes(f.read_bytes()[:400])
    return f.name


def two_series(c):
    shutil.copy(_files(c, "P0004")[0], c / "dicom" / "P0003" / "other.dcm")
    return "holds 2 image series"


def missing_pixel_spacing(c):
    f = _files(c, "P0005")[1]
    ds = pydicom.dcmread(f)
    del ds.PixelSpacing
    ds.save_as(f)
    return "missing PixelSpacing"


def uneven_spacing(c):
    files = _files(c, "P0006")
    pos = sorted(files, key=lambda f: -float(pydicom.dcmread(f).ImagePositionPatient[2]))
    pos[2].unlink()  # a missing middle slice
    return "uneven slice spacing"


def zero_byte_slice_gap(c):
    """A middle slice emptied by an interrupted copy: the gap's error names the skipped file."""
    files = _files(c, "P0006")
    pos = sorted(files, key=lambda f: -float(pydicom.dcmread(f).ImagePositionPatient[2]))
    pos[2].write_bytes(b"")
    return f"likely cause: the reader skipped 1 file(s) of this folder ({pos[2].name}: empty file (0 bytes))"


def not_an_image_slice_gap(c):
    """A middle slice overwritten by a text file: the gap's error names it as the likely cause."""
    files = _files(c, "P0006")
    pos = sorted(files, key=lambda f: -float(pydicom.dcmread(f).ImagePositionPatient[2]))
    pos[3].write_text("this is not DICOM\n" * 20)
    return f"likely cause: the reader skipped 1 file(s) of this folder ({pos[3].name}: not a DICOM file)"


def roi_outside_image(c):
    _set_cell(c / "rois.csv", 0, "x1", "500")
    return "extends outside the 48x48 image"


def roi_empty(c):
    _set_cell(c / "rois.csv", 1, "x1", lambda d: d.loc[1, "x0"])
    return "rois.csv line 3"


def roi_unknown_sop(c):
    _set_cell(c / "rois.csv", 2, "sop_instance_uid", "1.2.3.4.5")
    return "SOPInstanceUID 1.2.3.4.5 is not in the patient's series"


def roi_unknown_patient(c):
    _set_cell(c / "rois.csv", 3, "patient_id", "P9999")
    return "unknown patient 'P9999'"


def patient_without_series(c):
    shutil.rmtree(c / "dicom" / "P0007")
    return "patient P0007"


def duplicate_patient(c):
    _set_cell(c / "clinical.csv", 5, "patient_id", lambda d: d.loc[4, "patient_id"])
    return "duplicate patient_id 'P0005' on lines [6, 7]"


def inconsistent_stage(c):
    _set_cell(c / "clinical.csv", 0, ["t_stage", "n_stage", "overall_stage"], ["T4", "N1", "II"])
    return "overall_stage II is inconsistent with T4N1 (AJCC 7th gives IV)"


def dm_not_binary(c):
    _set_cell(c / "clinical.csv", 1, "dm", "yes")
    return "dm 'yes' must be 0 or 1"


def unknown_sex(c):
    _set_cell(c / "clinical.csv", 2, "sex", "X")
    return "unknown sex 'X'"


def missing_column(c):
    _edit_csv(c / "clinical.csv", lambda d: d.drop(columns=["treatment"]))
    return "missing column(s) treatment"


def missing_roi_column(c):
    _edit_csv(c / "rois.csv", lambda d: d.drop(columns=["y1"]))
    return "rois.csv: missing column(s) y1"


def empty_csv(c):
    (c / "rois.csv").write_text("")
    return "rois.csv: file is empty"


def non_utf8_csv(c):
    p = c / "clinical.csv"
    p.write_bytes(p.read_bytes().replace(b"P0003", b"P\xe90003"))
    return "not UTF-8 text (invalid byte 0xe9 on line 4)"


def bad_age(c):
    _set_cell(c / "clinical.csv", 3, "age", "fifty")
    return "age 'fifty' is not a number"


CASES = [truncated_dicom, two_series, missing_pixel_spacing, uneven_spacing, zero_byte_slice_gap,
         not_an_image_slice_gap,
         roi_outside_image, roi_empty, roi_unknown_sop, roi_unknown_patient, patient_without_series,
         duplicate_patient, inconsistent_stage, dm_not_binary, unknown_sex, missing_column,
         missing_roi_column, empty_csv, non_utf8_csv, bad_age]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_good_cohort_validates(tiny_cohort, capsys):
    cohort = load_cohort(tiny_cohort, progress=False)
    s = cohort.summary()
    assert s["patients"] == 12 and s["excluded_patients"] == 0
    assert s["rois"]["npc"] > 0 and s["slices"] == 72
    assert (cohort.rois["slice_index"] >= 0).all()
    assert main(["validate", str(tiny_cohort)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("mutate", CASES, ids=[c.__name__ for c in CASES])
def test_malformed_input_is_a_specific_error(mutate, cohort_copy, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    expected = mutate(cohort_copy)
    with pytest.raises(CohortError) as err:
        load_cohort(cohort_copy, progress=False)
    assert expected in str(err.value)
    before = _snapshot(cohort_copy.parent)
    code = main(["validate", str(cohort_copy)])
    out = capsys.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert len(lines) <= 2 and "Traceback" not in out.err
    assert _snapshot(cohort_copy.parent) == before  # nothing written on failure


@pytest.mark.parametrize("mutate", [truncated_dicom, patient_without_series, inconsistent_stage, roi_outside_image],
                         ids=lambda f: f.__name__)
def test_exclude_invalid_logs_the_exclusion(mutate, cohort_copy):
    mutate(cohort_copy)
    cohort = load_cohort(cohort_copy, exclude_invalid=True, progress=False)
    assert len(cohort.exclusions) >= 1
    s = cohort.summary()
    if mutate is roi_outside_image:
        assert s["dropped_rois"] == 1 and s["patients"] == 12
    else:
        assert s["excluded_patients"] == 1 and s["patients"] == 11
        assert any(step.startswith("excluded") for step, _ in cohort.flow)
    assert cohort.flow[-1] == ("patients analysed", s["patients"])


def test_every_problem_is_counted(cohort_copy):
    unknown_sex(cohort_copy)
    dm_not_binary(cohort_copy)
    with pytest.raises(CohortError, match=r"and 1 more problem"):
        load_cohort(cohort_copy, progress=False)
