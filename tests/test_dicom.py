"""The series reader on our synthetic series and on real MR files from pydicom-data."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from npc_lib.data.dicom import DECODER_HINT, read_series
from npc_lib.errors import DicomError

REAL_MR = ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
           "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]
REAL_MR2 = [("MR2_UNCR.dcm", "MR2_UNCR.dcm"), ("MR2_J2KR.dcm", "MR2_UNCR.dcm"), ("MR2_UNCI.dcm", "MR2_UNCI.dcm")]


def _real(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not installed (pip install pydicom-data)")
    return path


def test_synthetic_series_is_sorted_by_position(small_cohort):
    pid = "P0001"
    s = read_series(small_cohort / "dicom" / pid)
    masks = np.load(small_cohort / "masks" / f"{pid}.npz")
    assert s.sop_instance_uids == list(masks["sop_instance_uids"])
    assert s.slice_spacing == pytest.approx(5.0)
    assert s.pixel_spacing == pytest.approx((230 / 64, 230 / 64))
    assert s.pixels.shape == (8, 64, 64) and s.pixels.dtype == np.float32
    assert np.all(np.diff(s.positions[:, 2]) < 0)  # cranial first


def test_series_carries_no_identifiers(small_cohort):
    s = read_series(small_cohort / "dicom" / "P0002")
    text = repr(s) + repr(vars(s))
    ds = pydicom.dcmread(next((small_cohort / "dicom" / "P0002").iterdir()))
    for value in (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber):
        assert value not in text


@pytest.mark.parametrize("name", REAL_MR)
def test_real_mr_transfer_syntaxes_decode_identically(name, tmp_path):
    """Compressed and uncompressed encodings of the same real MR image give the same pixels."""
    ref = pydicom.dcmread(_real("MR_small.dcm")).pixel_array.astype(np.float32)
    shutil.copy(_real(name), tmp_path / "slice")
    s = read_series(tmp_path)
    assert s.n_slices == 1 and s.rows == 64 and s.pixel_spacing[0] > 0
    np.testing.assert_array_equal(s.pixels[0], ref)


@pytest.mark.parametrize("name,reference", REAL_MR2)
def test_real_scanner_files_from_pydicom_data(name, reference, tmp_path):
    """A 1024² scanner MR with RescaleSlope: lossless JPEG 2000 decodes to the uncompressed pixels."""
    shutil.copy(_real(name), tmp_path / name)
    s = read_series(tmp_path)
    ds = pydicom.dcmread(_real(reference))
    ref = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)  # RescaleSlope/Intercept applied
    assert "RescaleSlope" in ds
    np.testing.assert_allclose(s.pixels[0], ref.astype(np.float32), rtol=1e-6)


def test_real_header_multislice_series_is_sorted(tmp_path):
    """A 5-slice series built from a real MR header, with shuffled file names."""
    base = pydicom.dcmread(_real("MR_small.dcm"))
    z = [10.0, 16.0, 4.0, 22.0, -2.0]
    for i, zi in enumerate(z):
        ds = base.copy()
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ipp = [float(v) for v in base.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], zi]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.save_as(tmp_path / f"zz{i}")
    s = read_series(tmp_path)
    assert s.positions[:, 2].tolist() == sorted(z, reverse=True)
    assert s.slice_spacing == pytest.approx(6.0)


def test_missing_decoder_names_the_packages(tmp_path, monkeypatch):
    shutil.copy(_real("MR_small_jp2klossless.dcm"), tmp_path / "slice")

    def no_plugin(self):
        raise RuntimeError("Unable to decode the pixel data: no plugins are available, the "
                           "following packages are required: pylibjpeg-openjpeg")
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_plugin))
    with pytest.raises(DicomError) as err:
        read_series(tmp_path)
    assert "JPEG 2000" in str(err.value) and err.value.hint == DECODER_HINT


def test_truncated_real_file_is_reported(tmp_path):
    shutil.copy(_real("MR_truncated.dcm"), tmp_path / "slice.dcm")
    with pytest.raises(DicomError, match="slice.dcm"):
        read_series(tmp_path)


def test_jpeg_lossless_is_decoded_without_gpl_plugins():
    """JPEG Lossless (process 14, common in MR exports) through GDCM (Apache-2.0), not pylibjpeg-libjpeg (GPL)."""
    import importlib.util
    assert importlib.util.find_spec("libjpeg") is None, "pylibjpeg-libjpeg (GPL-3.0) must not be installed"
    ds = pydicom.dcmread(_real("JPEG-LL.dcm"))
    assert ds.file_meta.TransferSyntaxUID.name.startswith("JPEG Lossless")
    assert ds.pixel_array.shape == (1024, 256)


def test_twelve_bit_jpeg_extended_is_refused_with_what_to_do(tmp_path):
    ds = pydicom.dcmread(_real("JPEG-lossy.dcm"))  # a CT slice without geometry: give it some
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]
    ds.save_as(tmp_path / "slice")
    with pytest.raises(DicomError) as err:
        read_series(tmp_path)
    assert "slice" in str(err.value) and "JPEG Extended" in str(err.value)
    assert "dcmdjpeg" in err.value.hint
