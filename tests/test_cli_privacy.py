"""Command line behaviour, and no DICOM identifier reaches any output of the pipeline so far."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pydicom
import pytest

from npc_lib.cli import main

PLANTED = {"PatientName": "DOE^JANE^PRIVATE", "PatientID": "PHI-7734129", "PatientBirthDate": "19431107",
           "AccessionNumber": "ACCPHI55120", "OtherPatientIDs": "OTHERPHI8841", "PatientAddress": "12 Secret Lane"}


@pytest.mark.parametrize("command", ["synth", "validate", "table1", "tnm"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"npc-study {command}" in out


def test_console_script_is_installed():
    res = subprocess.run([sys.executable, "-m", "npc_lib", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "npc-study" in res.stdout


def test_missing_cohort_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'nope'}: cohort directory does not exist"]


def test_synth_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    assert main(["synth", str(tmp_path / "c"), "--patients", "10", "--matrix", "32", "--slices", "4"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def _identifiers(cohort) -> set[str]:
    found = set()
    for folder in (cohort / "dicom").iterdir():
        ds = pydicom.dcmread(next(folder.iterdir()))
        found |= {str(ds.PatientName), str(ds.PatientID), str(ds.PatientBirthDate), str(ds.AccessionNumber),
                  str(ds.OtherPatientIDs)}
    return found


def test_no_identifier_reaches_any_output(cohort_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for f in (cohort_copy / "dicom" / "P0003").iterdir():
        ds = pydicom.dcmread(f)
        for key, value in PLANTED.items():
            setattr(ds, key, value)
        ds.save_as(f)
    secrets = set(PLANTED.values()) | _identifiers(cohort_copy)
    assert len(secrets) > 40
    out = tmp_path / "out"
    out.mkdir()
    assert main(["validate", str(cohort_copy), "--json"]) == 0
    assert main(["validate", str(cohort_copy)]) == 0
    assert main(["table1", str(cohort_copy / "clinical.csv"), "--out", str(out / "table1.csv")]) == 0
    assert main(["tnm", str(cohort_copy / "clinical.csv"), "--json"]) == 0
    streams = capsys.readouterr()
    from npc_lib.data.cohort import load_cohort
    cohort = load_cohort(cohort_copy, progress=False)
    cohort.rois.to_csv(out / "rois.csv")
    cohort.clinical.to_csv(out / "clinical.csv")
    (out / "series.txt").write_text("\n".join(repr(vars(s)) for s in cohort.series.values()))
    texts = [streams.out, streams.err] + [p.read_text() for p in out.iterdir()]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"identifier {secret!r} leaked"
    assert "P0003" in streams.out or "P0003" in (out / "clinical.csv").read_text()  # pseudonym is fine


def test_broken_series_error_names_the_file_not_the_patient_identity(cohort_copy, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    f = sorted((cohort_copy / "dicom" / "P0004").iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.PatientName = PLANTED["PatientName"]
    del ds.PixelSpacing
    ds.save_as(f)
    assert main(["validate", str(cohort_copy)]) == 2
    err = capsys.readouterr().err
    assert f.name in err and "P0004" in err and PLANTED["PatientName"] not in err


def test_chain_on_a_synthetic_cohort(small_cohort, tmp_path, capsys):
    assert main(["validate", str(small_cohort), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] == 40 and summary["slices"] == 320
    assert main(["table1", str(small_cohort / "clinical.csv"), "--out", str(tmp_path / "t1.csv")]) == 0
    t1 = pd.read_csv(tmp_path / "t1.csv")
    assert t1.loc[t1.variable == "patients", ["train_dm", "train_no_dm", "test_dm", "test_no_dm"]].sum(axis=1).iloc[0] == 40
    capsys.readouterr()
    assert main(["tnm", str(small_cohort / "clinical.csv"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["patients"] == 8 and 0 <= res["stage_iv_vs_i_iii"]["auc"] <= 1
