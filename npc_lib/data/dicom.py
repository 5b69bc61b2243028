"""Read one axial MR series per patient, check its geometry, and never return identifiers.

``read_series(folder)`` reads every file of the patient's folder and keeps the image slices of
one series: what PACS and viewer exports commonly add is skipped with a note (``Series.notes``)
— files that are not DICOM (README, DICOMDIR, .DS_Store...), DICOM objects without an image
(structured reports, presentation states, RT structures, segmentations) and localizer / scout
images. If several image series remain, the one named in the cohort's ``series.csv`` is used,
else a clear error names them. Headers without a Transfer Syntax UID are read with the encoding
pydicom detects (uncompressed data only), colour images are refused, and MONOCHROME1 slices are
inverted to MONOCHROME2 (noted). The slices are sorted along the slice normal by
ImagePositionPatient, orientation, matrix and PixelSpacing must agree and the slices be evenly
spaced; the returned :class:`Series` holds pixels and geometry only: no PatientName, PatientID,
BirthDate, AccessionNumber or any other PS3.15 identifier.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from npc_lib.errors import DicomError

log = logging.getLogger(__name__)

# the decoders a MIT project can ship (pylibjpeg-libjpeg is GPL-3.0): GDCM (Apache-2.0) for JPEG and
# JPEG-LS, OpenJPEG (MIT) for JPEG 2000, pylibjpeg-rle (MIT) for RLE. None of them reads 12-bit JPEG
# Extended (processes 2 and 4, rare in MR): such files must be decompressed first.
DECODER_HINT = ("install the pixel-data plugins: pip install python-gdcm pylibjpeg pylibjpeg-openjpeg pylibjpeg-rle; "
                "12-bit JPEG Extended (lossy) is not read by them: decompress the series first, e.g. with "
                "dcmtk's dcmdjpeg or gdcmconv --raw")
SPACING_TOLERANCE = 0.02  # relative deviation allowed between slice gaps
IGNORED_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db", "desktop.ini"}
NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "REG", "DOC", "FID"}
LOCALIZER_TYPES = {"LOCALIZER", "SCOUT"}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}


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
    series_instance_uid: str = ""
    notes: list[str] = field(default_factory=list)  # files skipped, encodings inferred, inversions
    monochrome1: bool = False                        # slices stored inverted (displayed dark = high)

    @property
    def n_slices(self) -> int:
        return len(self.sop_instance_uids)

    def slice_index(self) -> dict[str, int]:
        """SOPInstanceUID → slice index (0 = first along the normal)."""
        return {uid: i for i, uid in enumerate(self.sop_instance_uids)}


class Skipped(Exception):
    """A file that is not part of an image series; the message says why (for the notes)."""


def _infer_transfer_syntax(ds, path: Path) -> str:
    """Set a missing Transfer Syntax UID from the encoding pydicom detected; returns a note."""
    if "PixelData" in ds and _encapsulated(ds):
        raise DicomError(f"{path}: no Transfer Syntax UID in the file meta header, and the pixel data is "
                         "compressed (encapsulated): its codec cannot be inferred",
                         hint="re-export the series with its file meta information (Part 10 format)")
    implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (False, True)
    uid = (pydicom.uid.ImplicitVRLittleEndian if implicit and little else
           pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return f"{path.name}: no Transfer Syntax UID; read as {uid.name} (the encoding found in the file)"


def _encapsulated(ds) -> bool:
    raw = ds.get_item("PixelData")
    value = raw.value if raw is not None else b""
    return bool(raw is not None and getattr(raw, "is_undefined_length", False)) or value[:4] == b"\xfe\xff\x00\xe0"


def _read_file(path: Path) -> tuple[pydicom.Dataset, list[str]]:
    """Read one file of a series folder; :class:`Skipped` for what belongs to no image series."""
    if path.name in IGNORED_NAMES or path.name.startswith("."):
        raise Skipped(f"{path.name}: not an image file (export index or system file)")
    if path.stat().st_size == 0:
        raise Skipped(f"{path.name}: empty file (0 bytes)")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        try:  # DICOM without the 128-byte preamble (older exports) is still DICOM
            ds = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - anything unreadable with force is not DICOM
            raise Skipped(f"{path.name}: not a DICOM file") from None
        if "SOPClassUID" not in ds and "PixelData" not in ds:
            raise Skipped(f"{path.name}: not a DICOM file") from None
    except Exception as exc:  # truncated or corrupt files raise assorted errors
        raise DicomError(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc})",
                         hint="the file may be truncated or corrupt; re-export the series") from None
    modality = str(ds.get("Modality", "") or "").upper()
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    kind = str(getattr(sop_class, "name", "") or "")
    if "PixelData" not in ds and "Image Storage" in kind:
        raise DicomError(f"{path}: has no pixel data ({kind}; truncated file?)",
                         hint="re-export the series")
    if "PixelData" not in ds or modality in NON_IMAGE_MODALITIES:
        raise Skipped(f"{path.name}: {kind or 'object'} ({modality or 'no modality'}), not an image")
    image_type = {str(v).strip().upper() for v in (ds.get("ImageType") or [])}
    if image_type & LOCALIZER_TYPES:
        value = "\\".join(str(v) for v in ds.ImageType)
        raise Skipped(f"{path.name}: localizer / scout image (ImageType {value})")
    notes = []
    if meta is None or "TransferSyntaxUID" not in meta:
        notes.append(_infer_transfer_syntax(ds, path))
    colour = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1 or colour in COLOUR:
        raise DicomError(f"{path}: colour image (PhotometricInterpretation {colour or '?'}, "
                         f"{int(ds.get('SamplesPerPixel', 1) or 1)} samples per pixel); the series must be a "
                         "greyscale MR series", hint="remove screen captures or colour maps from the patient folder")
    return ds, notes


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


def read_series(folder: str | Path, load_pixels: bool = True, series_uid: str | None = None) -> Series:
    """Read and check the axial image series in ``folder`` (file names are irrelevant).

    Parameters
    ----------
    folder : the patient's folder of DICOM files (searched recursively).
    load_pixels : decode the slices (float32, [slices, rows, cols]) or read headers only.
    series_uid : the SeriesInstanceUID to use when the folder holds several image series.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DicomError(f"{folder}: series folder does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise DicomError(f"{folder}: contains no DICOM files")
    datasets, notes, skipped = [], [], []
    for path in files:
        try:
            ds, file_notes = _read_file(path)
        except Skipped as why:
            notes.append(f"skipped {why}")
            skipped.append(str(why))
            continue
        notes += file_notes
        datasets.append((path, ds))
    if not datasets:
        raise DicomError(f"{folder}: contains no DICOM image ({len(files)} file(s) skipped: {notes[0]})")
    by_series: dict[str, list] = {}
    for path, ds in datasets:
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    if series_uid:
        if series_uid not in by_series:
            raise DicomError(f"{folder}: series.csv names SeriesInstanceUID {series_uid}, which is not among the "
                             f"folder's image series ({_describe(by_series)})")
        chosen = series_uid
    elif len(by_series) > 1:
        raise DicomError(f"{folder}: holds {len(by_series)} image series ({_describe(by_series)}); name the one "
                         "to use in the cohort's series.csv (patient_id, series_instance_uid)",
                         hint="or keep only the axial T1 contrast-enhanced series in the folder")
    else:
        chosen = next(iter(by_series))
    for uid, group in by_series.items():
        if uid != chosen:
            desc = str(group[0][1].get("SeriesDescription", "") or "no description")
            notes.append(f"skipped series {uid} ({desc}, {len(group)} file(s)): not the chosen series")
    datasets = by_series[chosen]
    for path, ds in datasets:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise DicomError(f"{path}: multi-frame image ({ds.NumberOfFrames} frames)",
                             hint="export the series as single-frame axial slices")
        _require(ds, path, "SeriesInstanceUID", "SOPInstanceUID", "Rows", "Columns",
                 "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient")
        _check_pixel_length(ds, path)
    series = _assemble(folder, datasets, load_pixels, skipped)
    series.series_instance_uid = chosen
    series.notes = notes + series.notes
    for note in series.notes:
        log.info("%s: %s", folder.name, note)
    return series


def _gap_cause(skipped: list[str]) -> str:
    """The files the reader skipped, named as the likely cause of a gap in the slice positions."""
    shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    return f"likely cause: the reader skipped {len(skipped)} file(s) of this folder ({shown})"


def _describe(by_series: dict[str, list]) -> str:
    return "; ".join(f"{uid} '{str(g[0][1].get('SeriesDescription', '') or 'no description')}' "
                     f"with {len(g)} file(s)" for uid, g in by_series.items())


def _assemble(folder: Path, datasets, load_pixels: bool, skipped: list[str] = ()) -> Series:
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
            cause = f"; {_gap_cause(skipped)}" if skipped else ""
            raise DicomError(f"{folder}: uneven slice spacing ({gaps.min():.2f}–{gaps.max():.2f} mm; "
                             f"gap of {gaps[i]:.2f} mm before {datasets[i + 1][0].name}, expected {med:.2f}){cause}",
                             hint="replace the skipped file(s) with intact copies" if skipped else
                             "a slice is missing or belongs to another acquisition")
        spacing = med
    else:
        spacing = thickness or 1.0
    mono1 = [str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" for _, ds in datasets]
    if any(mono1) and not all(mono1):
        raise DicomError(f"{folder}: the series mixes MONOCHROME1 and MONOCHROME2 slices")
    notes = ["MONOCHROME1 slices inverted to MONOCHROME2 (high values bright)"] if all(mono1) else []
    pixels = None
    if load_pixels:
        pixels = np.stack([_decode(ds, path) for path, ds in datasets])
        if all(mono1):  # stored so that high values display dark: flip within the series' range
            pixels = (pixels.max() + pixels.min()) - pixels
    return Series(
        sop_instance_uids=[str(ds.SOPInstanceUID) for _, ds in datasets],
        file_names=[str(p.relative_to(folder)) for p, _ in datasets],
        rows=ref[0], cols=ref[1], pixel_spacing=(float(ref[2][0]), float(ref[2][1])),
        slice_spacing=float(spacing), slice_thickness=thickness, positions=pos, orientation=iop,
        transfer_syntax=str(first.file_meta.TransferSyntaxUID.name), pixels=pixels, notes=notes,
        monochrome1=all(mono1))
