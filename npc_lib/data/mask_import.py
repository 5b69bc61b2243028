"""ROI rectangles from the label maps and contours that annotation tools export.

One file per patient in the masks folder, named after the pseudonymous patient ID:
``<patient>.nii.gz`` / ``.nii`` (NIfTI, e.g. 3D Slicer, ITK-SNAP), ``<patient>.nrrd`` /
``.seg.nrrd`` (NRRD), ``<patient>.dcm`` (DICOM SEG or RTSTRUCT). Label maps are matched to the
patient's DICOM series through their affine: every pixel of every slice must fall on a voxel
centre within 0.1 mm (orientation, axis order, LPS/RAS and slice direction may all differ); a
mismatched grid is an error naming the patient and the offset. DICOM SEG frames are read with
highdicom by their source SOP Instance UIDs; RTSTRUCT contours are read with pydicom and filled
on their slices (pixel centres inside the polygon, even-odd rule for holes). Each region's
labels (``--label npc=1,2``: label values, SEG segment numbers, or RTSTRUCT ROI numbers or
names) are merged per slice, and every 8-connected component gives one tight, half-open
rectangle: the rows of ``rois.csv``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.draw import polygon as fill_polygon
from skimage.measure import label as connected_components
from skimage.measure import regionprops

from npc_lib.atomic import write_csv
from npc_lib.data.cohort import CLINICAL_COLUMNS, ROI_COLUMNS, SERIES_CSV, series_choices
from npc_lib.data.dicom import Series, read_series
from npc_lib.errors import CohortError
from npc_lib.progress import progress_bar
from npc_lib.data.tables import read_csv_strict

log = logging.getLogger(__name__)
FORMATS = {"nifti": (".nii.gz", ".nii"), "nrrd": (".seg.nrrd", ".nrrd", ".nhdr"), "seg": (".dcm",),
           "rtstruct": (".dcm",)}
GRID_TOLERANCE_MM = 0.1
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class MaskError(CohortError):
    """A mask file does not match its patient's series or cannot be read."""


def parse_labels(specs: list[str]) -> dict[str, list]:
    """``["npc=1,2", "cmln=3,4,5"]`` → ``{"npc": [1, 2], "cmln": [3, 4, 5]}`` (names allowed for RTSTRUCT)."""
    out: dict[str, list] = {}
    for spec in specs:
        region, sep, values = spec.partition("=")
        region = region.strip().lower()
        if not sep or region not in ("npc", "cmln") or not values.strip():
            raise CohortError(f"--label {spec!r}: expected npc=VALUES or cmln=VALUES (comma-separated labels)")
        out.setdefault(region, []).extend(int(v) if v.strip().lstrip("-").isdigit() else v.strip()
                                          for v in values.split(","))
    if not out:
        raise CohortError("give at least one --label, e.g. --label npc=1 --label cmln=2,3")
    return out


def rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Tight half-open ``(x0, y0, x1, y1)`` of every 8-connected component of a 2-D mask."""
    comps = connected_components(mask.astype(bool), connectivity=2)
    boxes = [(p.bbox[1], p.bbox[0], p.bbox[3], p.bbox[2]) for p in regionprops(comps)]
    return sorted((int(x0), int(y0), int(x1), int(y1)) for x0, y0, x1, y1 in boxes)


@dataclass(frozen=True)
class Grid:
    """Where a series' pixels lie in patient space (LPS, mm)."""

    positions: np.ndarray   # [slices, 3] ImagePositionPatient
    col_step: np.ndarray    # mm vector from one column to the next
    row_step: np.ndarray    # mm vector from one row to the next
    rows: int
    cols: int

    @classmethod
    def of(cls, s: Series) -> "Grid":
        o = np.asarray(s.orientation, float)
        return cls(np.asarray(s.positions, float), o[:3] * s.pixel_spacing[1], o[3:] * s.pixel_spacing[0],
                   s.rows, s.cols)


# --- label maps (NIfTI, NRRD) -------------------------------------------------------------

def _read_label_map(path: Path, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer label array [i, j, k] and the affine from voxel indices to LPS millimetres."""
    if fmt == "nifti":
        import nibabel as nib
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
        affine = LPS_FROM_RAS @ img.affine
    else:
        import nrrd
        data, header = nrrd.read(str(path))
        dirs = np.asarray(header.get("space directions"), float)
        if dirs.shape != (3, 3):
            raise MaskError(f"{path.name}: NRRD without 3-D 'space directions' (got shape {dirs.shape})")
        affine = np.eye(4)
        affine[:3, :3] = dirs.T
        affine[:3, 3] = np.asarray(header.get("space origin", [0, 0, 0]), float)
        space = str(header.get("space", "left-posterior-superior")).lower()
        if space in ("right-anterior-superior", "ras"):
            affine = LPS_FROM_RAS @ affine
        elif space not in ("left-posterior-superior", "lps"):
            raise MaskError(f"{path.name}: NRRD space {space!r} is not supported (LPS or RAS)")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MaskError(f"{path.name}: expected a 3-D label map, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating):
        if not np.allclose(data, np.round(data)):
            raise MaskError(f"{path.name}: label values must be integers")
        data = np.round(data).astype(np.int32)
    return data, affine


def labels_on_series(data: np.ndarray, affine: np.ndarray, grid: Grid, patient: str) -> np.ndarray:
    """The label map sampled at every pixel of the series: [slices, rows, cols].

    Each slice's voxel indices are an affine function of (row, column); the map must place every
    pixel on a voxel centre (within ``GRID_TOLERANCE_MM``), else :class:`MaskError`.
    """
    inv = np.linalg.inv(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    u, v = inv[:3, :3] @ grid.col_step, inv[:3, :3] @ grid.row_step
    ur, vr = np.round(u), np.round(v)
    drift = max(np.abs((u - ur) * spacing).max() * (grid.cols - 1), np.abs((v - vr) * spacing).max() * (grid.rows - 1))
    if drift > GRID_TOLERANCE_MM or np.abs(ur).sum() != 1 or np.abs(vr).sum() != 1:
        raise MaskError(f"patient {patient}: the label map's voxel grid does not follow the series' rows and "
                        f"columns (off by up to {drift:.2f} mm across a slice; tolerance {GRID_TOLERANCE_MM} mm)",
                        hint="export the label map on the series' own grid (no resampling)")
    out = np.zeros((len(grid.positions), grid.rows, grid.cols), dtype=data.dtype)
    axis_c, axis_r = int(np.flatnonzero(ur)[0]), int(np.flatnonzero(vr)[0])
    if axis_c == axis_r:
        raise MaskError(f"patient {patient}: the label map's rows and columns run along the same voxel axis")
    axis_k = 3 - axis_c - axis_r
    step_c, step_r = int(ur[axis_c]), int(vr[axis_r])
    for k, pos in enumerate(grid.positions):
        b = inv[:3, :3] @ pos + inv[:3, 3]
        br = np.round(b)
        offset = float(np.linalg.norm((b - br) * spacing))
        if offset > GRID_TOLERANCE_MM:
            raise MaskError(f"patient {patient}: slice {k} of the series lies {offset:.2f} mm from the label map's "
                            f"voxel centres (tolerance {GRID_TOLERANCE_MM} mm)",
                            hint="check that the label map was drawn on this series")
        start = br.astype(np.int64)
        ends = {axis_c: start[axis_c] + step_c * (grid.cols - 1), axis_r: start[axis_r] + step_r * (grid.rows - 1)}
        if not (0 <= start[axis_k] < data.shape[axis_k]) or any(
                min(start[a], e) < 0 or max(start[a], e) >= data.shape[a] for a, e in ends.items()):
            raise MaskError(f"patient {patient}: slice {k} of the series falls outside the label map "
                            f"(shape {data.shape})")
        # unit steps along two voxel axes: the slice is a strided view of the volume, no gather needed
        sl = [slice(None)] * 3
        sl[axis_k] = int(start[axis_k])
        for a, step, n in ((axis_c, step_c, grid.cols), (axis_r, step_r, grid.rows)):
            stop = start[a] + step * n
            sl[a] = slice(int(start[a]), int(stop) if stop >= 0 else None, step)
        plane = data[tuple(sl)]  # remaining axes in volume order
        out[k] = plane.T if axis_r > axis_c else plane
    return out


# --- DICOM SEG and RTSTRUCT --------------------------------------------------------------

def _seg_masks(path: Path, series: Series, regions: dict[str, list], patient: str) -> dict[str, np.ndarray]:
    import highdicom as hd
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable SEG is one clear error
        raise MaskError(f"patient {patient}: {path.name} is not a readable DICOM SEG ({exc})") from None
    referenced = {sop for _, _, sop in seg.get_source_image_uids()}
    uids = series.sop_instance_uids
    present = [u for u in uids if u in referenced]
    if not present:
        raise MaskError(f"patient {patient}: {path.name} references none of the series' SOP Instance UIDs")
    known = {int(s.segment_number) for s in seg.SegmentSequence}
    out = {}
    for region, numbers in regions.items():
        missing = [n for n in numbers if n not in known]
        if missing:
            raise MaskError(f"patient {patient}: {path.name} has no segment {missing[0]} "
                            f"(segments: {sorted(known)})")
        pixels = seg.get_pixels_by_source_instance(present, segment_numbers=numbers, combine_segments=False,
                                                   skip_overlap_checks=True)
        mask = np.zeros((len(uids), series.rows, series.cols), bool)
        for i, uid in enumerate(present):
            mask[uids.index(uid)] = np.asarray(pixels[i]).reshape(series.rows, series.cols, -1).any(axis=-1)
        out[region] = mask
    return out


def _rtstruct_masks(path: Path, series: Series, regions: dict[str, list], patient: str) -> dict[str, np.ndarray]:
    import pydicom
    ds = pydicom.dcmread(path)
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise MaskError(f"patient {patient}: {path.name} is not an RTSTRUCT (Modality {ds.get('Modality')})")
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    grid = Grid.of(series)
    normal = np.cross(grid.col_step, grid.row_step)
    normal /= np.linalg.norm(normal)
    along = grid.positions @ normal
    slice_of = series.slice_index()
    axes = np.stack([grid.col_step / np.dot(grid.col_step, grid.col_step),
                     grid.row_step / np.dot(grid.row_step, grid.row_step)])
    out = {}
    for region, wanted in regions.items():
        numbers = {n for n, name in names.items() if n in wanted or name in wanted}
        if not numbers:
            raise MaskError(f"patient {patient}: {path.name} has no ROI {wanted} (ROIs: {names})")
        mask = np.zeros((len(grid.positions), grid.rows, grid.cols), bool)
        for roi in ds.get("ROIContourSequence", []):
            if int(roi.ReferencedROINumber) not in numbers:
                continue
            per_roi = np.zeros_like(mask)
            for contour in roi.get("ContourSequence", []):
                pts = np.asarray(contour.ContourData, float).reshape(-1, 3)
                refs = contour.get("ContourImageSequence", [])
                k = slice_of.get(str(refs[0].ReferencedSOPInstanceUID)) if refs else None
                if k is None:
                    k = int(np.argmin(np.abs(along - float(np.mean(pts @ normal)))))
                cr = (pts - grid.positions[k]) @ axes.T  # continuous (column, row) pixel coordinates
                rr, cc = fill_polygon(cr[:, 1], cr[:, 0], shape=(grid.rows, grid.cols))
                per_roi[k, rr, cc] ^= True  # even-odd: inner contours cut holes
            mask |= per_roi
        out[region] = mask
    return out


# --- the command ---------------------------------------------------------------------------

def _mask_file(masks_dir: Path, patient: str, fmt: str) -> Path | None:
    for suffix in FORMATS[fmt]:
        p = masks_dir / f"{patient}{suffix}"
        if p.is_file():
            return p
    return None


def patient_rectangles(masks_dir: Path, fmt: str, regions: dict[str, list], patient: str,
                       series: Series) -> list[tuple]:
    """Rows of ``rois.csv`` for one patient (none when the patient has no mask file)."""
    path = _mask_file(masks_dir, patient, fmt)
    if path is None:
        return []
    if fmt in ("nifti", "nrrd"):
        data, affine = _read_label_map(path, fmt)
        labels = labels_on_series(data, affine, Grid.of(series), patient)
        masks = {r: np.isin(labels, [int(v) for v in values]) for r, values in regions.items()}
    elif fmt == "seg":
        masks = _seg_masks(path, series, regions, patient)
    else:
        masks = _rtstruct_masks(path, series, regions, patient)
    rows = []
    for region, mask in masks.items():
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            rows += [(patient, series.sop_instance_uids[k], region, *box) for box in rectangles(mask[k])]
    return rows


def rois_from_masks(cohort_dir: str | Path, masks_dir: str | Path, fmt: str, regions: dict[str, list],
                    out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Write ``rois.csv`` (atomically) for every patient of ``clinical.csv`` that has a mask file.

    Returns
    -------
    DataFrame with the columns of ``rois.csv`` (one row per rectangle).
    """
    if fmt not in FORMATS:
        raise CohortError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    cohort_dir, masks_dir = Path(cohort_dir), Path(masks_dir)
    if not masks_dir.is_dir():
        raise CohortError(f"{masks_dir}: masks folder does not exist")
    clinical = read_csv_strict(cohort_dir / "clinical.csv", CLINICAL_COLUMNS)
    patients = clinical["patient_id"].str.strip().tolist()
    chosen = series_choices(cohort_dir / SERIES_CSV, set(patients))
    rows, without = [], []
    for pid in progress_bar(patients, desc="masks → rectangles", unit="patient", enabled=progress):
        if _mask_file(masks_dir, pid, fmt) is None:
            without.append(pid)
            continue
        series = read_series(cohort_dir / "dicom" / pid, load_pixels=False, series_uid=chosen.get(pid))
        rows += patient_rectangles(masks_dir, fmt, regions, pid, series)
    if without:
        log.warning("%d patient(s) without a %s mask file in %s (no rectangles): %s", len(without), fmt,
                    masks_dir, ", ".join(without[:10]) + (" ..." if len(without) > 10 else ""))
    table = pd.DataFrame(rows, columns=ROI_COLUMNS)
    write_csv(out, table)
    return table
