"""Read one axial MR series per patient, check its geometry, and never return identifiers.

``read_series(folder)`` groups the folder's files by SeriesInstanceUID (exactly one series is
allowed), sorts the slices along the slice normal by ImagePositionPatient, checks that
orientation, matrix and PixelSpacing agree and that the slices are evenly spaced, and returns
a :class:`Series` that holds pixels and geometry only: no PatientName, PatientID, BirthDate,
AccessionNumber or any other PS3.15 identifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from .errors import DicomError

DECODER_HINT = ("install the pixel-data plugins: pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg pylibjpeg-rle (or python-gdcm)")
SPACING_TOLERANCE = 0.02  # relative deviation allowed between slice gaps
IGNORED_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db"}


@dataclass
class Series:
    """An identifier-free axial series: pixels (float32, [slices, rows, cols]) and geometry."""

    sop_instance_uids: list[str]
    file_names: list[str]
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]      # (row spacing, column spacing) in mm
    slice_spacing: float                    # mm between slice centres along the normal
    slice_thickness: float | None
    positions: np.ndarray                   # [slices, 3] ImagePositionPatient
    orientation: np.ndarray                 # [6] ImageOrientationPatient
    transfer_syntax: str
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_slices(self) -> int:
        return len(self.sop_instance_uids)

    def slice_index(self) -> dict[str, int]:
        """SOPInstanceUID → slice index (0 = first along the normal)."""
        return {uid: i for i, uid in enumerate(self.sop_instance_uids)}


def _read_file(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise DicomError(f"{path}: not a DICOM file (no DICM preamble or valid header)",
                         hint="remove non-DICOM files from the series folder") from None
    except Exception as exc:  # truncated or corrupt files raise assorted errors
        raise DicomError(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc})",
                         hint="the file may be truncated or corrupt; re-export the series") from None
    if "PixelData" not in ds:
        raise DicomError(f"{path}: has no pixel data (not an image)")
    return ds


def _require(ds, path: Path, *keywords):
    for kw in keywords:
        if kw not in ds or ds[kw].value in (None, "", []):
            raise DicomError(f"{path}: missing {kw}",
                             hint="the series needs PixelSpacing, ImagePositionPatient and "
                                  "ImageOrientationPatient to compute the ROI geometry")


def _check_pixel_length(ds, path: Path):
    """Catch truncated uncompressed pixel data without decoding it."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = ds.Rows * ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8) * frames
    if len(ds.PixelData) < expected:
        raise DicomError(f"{path}: pixel data truncated ({len(ds.PixelData)} of {expected} bytes)",
                         hint="re-export the series")


def _decode(ds, path: Path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = ds.file_meta.TransferSyntaxUID
        if ts.is_compressed and ("plugin" in str(exc).lower() or "required" in str(exc).lower()
                                 or "decod" in str(exc).lower()):
            raise DicomError(f"{path}: cannot decode {ts.name} pixel data", hint=DECODER_HINT) from None
        raise DicomError(f"{path}: pixel data cannot be decoded ({exc})") from None
    arr = pydicom.pixels.apply_modality_lut(arr, ds)
    return np.asarray(arr, dtype=np.float32)


def list_files(folder: Path) -> list[Path]:
    """All candidate files of a series folder (recursively; hidden and DICOMDIR skipped)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in IGNORED_NAMES
                  and not p.name.startswith("."))


def read_series(folder: str | Path, load_pixels: bool = True) -> Series:
    """Read and check the single axial series in ``folder`` (file names are irrelevant)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DicomError(f"{folder}: series folder does not exist")
    files = list_files(folder)
    if not files:
        raise DicomError(f"{folder}: contains no DICOM files")
    datasets = []
    for path in files:
        ds = _read_file(path)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise DicomError(f"{path}: multi-frame image ({ds.NumberOfFrames} frames)",
                             hint="export the series as single-frame axial slices")
        _require(ds, path, "SeriesInstanceUID", "SOPInstanceUID", "Rows", "Columns",
                 "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")
        _check_pixel_length(ds, path)
        datasets.append((path, ds))
    series_uids = {str(ds.SeriesInstanceUID) for _, ds in datasets}
    if len(series_uids) > 1:
        counts = {u: sum(str(d.SeriesInstanceUID) == u for _, d in datasets) for u in series_uids}
        raise DicomError(f"{folder}: holds {len(series_uids)} series (files per series: "
                         f"{sorted(counts.values(), reverse=True)}); exactly one is expected",
                         hint="keep only the axial T1 contrast-enhanced series in each patient folder")
    return _assemble(folder, datasets, load_pixels)


def _assemble(folder: Path, datasets, load_pixels: bool) -> Series:
    first_path, first = datasets[0]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    if np.linalg.norm(normal) < 0.5:
        raise DicomError(f"{first_path}: ImageOrientationPatient {list(iop)} is degenerate")
    ref = (int(first.Rows), int(first.Columns), tuple(float(v) for v in first.PixelSpacing))
    uids = set()
    for path, ds in datasets:
        got = (int(ds.Rows), int(ds.Columns), tuple(float(v) for v in ds.PixelSpacing))
        if got[:2] != ref[:2] or not np.allclose(got[2], ref[2], rtol=1e-4):
            raise DicomError(f"{path}: matrix/PixelSpacing {got} differs from {first_path.name} {ref}")
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-3):
            raise DicomError(f"{path}: ImageOrientationPatient differs from the rest of the series")
        if str(ds.SOPInstanceUID) in uids:
            raise DicomError(f"{path}: duplicate SOPInstanceUID {ds.SOPInstanceUID}")
        uids.add(str(ds.SOPInstanceUID))
    if min(ref[2]) <= 0:
        raise DicomError(f"{first_path}: PixelSpacing {list(ref[2])} must be positive")
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in datasets])
    along = pos @ normal
    order = np.argsort(-along, kind="stable")  # first = largest coordinate along the normal
    datasets = [datasets[i] for i in order]
    pos, along = pos[order], along[order]
    gaps = -np.diff(along)
    thickness = first.get("SliceThickness")
    thickness = float(thickness) if thickness not in (None, "") else None
    if len(datasets) > 1:
        if np.any(gaps < 1e-3):
            i = int(np.argmin(gaps))
            raise DicomError(f"{datasets[i + 1][0]}: same slice position as {datasets[i][0].name}")
        med = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - med) > SPACING_TOLERANCE * med + 1e-3)
        if bad.size:
            i = int(bad[0])
            raise DicomError(f"{folder}: uneven slice spacing ({gaps.min():.2f}–{gaps.max():.2f} mm; "
                             f"gap of {gaps[i]:.2f} mm before {datasets[i + 1][0].name}, expected {med:.2f})",
                             hint="a slice is missing or belongs to another acquisition")
        spacing = med
    else:
        spacing = thickness or 1.0
    pixels = None
    if load_pixels:
        pixels = np.stack([_decode(ds, path) for path, ds in datasets])
    return Series(
        sop_instance_uids=[str(ds.SOPInstanceUID) for _, ds in datasets],
        file_names=[str(p.relative_to(folder)) for p, _ in datasets],
        rows=ref[0], cols=ref[1], pixel_spacing=(float(ref[2][0]), float(ref[2][1])),
        slice_spacing=float(spacing), slice_thickness=thickness, positions=pos, orientation=iop,
        transfer_syntax=str(first.file_meta.TransferSyntaxUID.name), pixels=pixels)
