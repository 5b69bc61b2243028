"""On-disk ROI image stores and backbone feature caches, with fingerprints and integrity checks.

An image store holds every ROI of a cohort once per variant (``intra``, ``peri``) as uint8
memmaps plus a parquet index; the eight datasets are index views. It lives in
``<cache>/images-<fingerprint>/`` where the fingerprint covers the cohort tables, the DICOM
file list and the geometry; ``manifest.json`` (with file sizes and SHA-256) is written last,
so a partial or corrupted store is detected and rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from npc_lib import __version__
from npc_lib.atomic import atomic_dir, write_json
from npc_lib.checksums import sha256_file  # noqa: F401 - the stores' and caches' checksum
from npc_lib.layout import store_folder
from npc_lib.data.cohort import Cohort
from npc_lib.progress import progress_bar
from npc_lib.data.rois import Geometry, add_variant_boxes, box_columns, mark_max_tumour, roi_image

log = logging.getLogger(__name__)
STORE_FORMAT = 1


class CacheError(RuntimeError):
    """A cache is missing, partial, stale or corrupt."""


def cohort_fingerprint(cohort: Cohort, geometry: Geometry, resample_mm: float | None = None) -> str:
    """Hash of the inputs that determine the stored images."""
    h = hashlib.sha256()
    h.update(f"store{STORE_FORMAT}".encode())
    if resample_mm is not None:
        h.update(f"resample{float(resample_mm):.6g}".encode())
    h.update(json.dumps(asdict(geometry), sort_keys=True).encode())
    h.update(json.dumps(box_columns()).encode())  # the registered variants: one image each per ROI
    for name in ("clinical.csv", "rois.csv"):
        h.update((cohort.root / name).read_bytes())
    for pid in sorted(cohort.series):
        s = cohort.series[pid]
        h.update(pid.encode())
        for fname in s.file_names:
            h.update(f"{fname}:{(cohort.root / 'dicom' / pid / fname).stat().st_size}".encode())
    h.update(json.dumps(cohort.exclusions.to_dict("records"), sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


@dataclass
class ImageStore:
    """A verified image store: ``index`` rows align with the rows of each variant's memmap."""

    root: Path
    index: pd.DataFrame
    manifest: dict

    def images(self, variant: str) -> np.memmap:
        n, s = self.manifest["count"], self.manifest["size"]
        return np.memmap(self.root / f"{variant}.u8", dtype=np.uint8, mode="r", shape=(n, s, s))

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]


def open_image_store(root: str | Path, verify: bool = True) -> ImageStore:
    """Open a store folder; raise :class:`CacheError` if anything is missing or altered.

    Parameters
    ----------
    root : an ``images-<fingerprint>`` folder
    verify : check every file's checksum (slower)

    Returns
    -------
    :class:`ImageStore`: ``index`` (one row per stored image) and ``images(variant)``, a read-only
    memmap of shape (n, size, size), uint8.
    """
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise CacheError(f"{root}: no manifest (partial or interrupted build)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise CacheError(f"{manifest_path}: unreadable ({exc})") from None
    if manifest.get("format") != STORE_FORMAT:
        raise CacheError(f"{root}: store format {manifest.get('format')} != {STORE_FORMAT}")
    expected = manifest["count"] * manifest["size"] ** 2
    for name, digest in manifest["files"].items():
        path = root / name
        if not path.is_file():
            raise CacheError(f"{path}: missing")
        if name.endswith(".u8") and path.stat().st_size != expected:
            raise CacheError(f"{path}: {path.stat().st_size} bytes, expected {expected}")
        if verify and sha256_file(path) != digest:
            raise CacheError(f"{path}: checksum mismatch (corrupt)")
    index = pd.read_parquet(root / "index.parquet")
    if len(index) != manifest["count"]:
        raise CacheError(f"{root}: index has {len(index)} rows, manifest says {manifest['count']}")
    return ImageStore(root, index, manifest)


def build_image_store(cohort: Cohort, geometry: Geometry, cache_dir: str | Path, progress: bool = True,
                      verify: bool = True, resample_mm: float | None = None, rebuild: bool = False) -> ImageStore:
    """Return the cohort's image store, reusing a valid cached one or (re)building it.

    Builds patient by patient into preallocated memmaps in a temp folder (peak memory is one
    patient's series), then writes the manifest and renames the folder into place. ``resample_mm``
    resamples every crop to that pixel spacing first (a harmonisation of another centre's images);
    ``rebuild`` builds it anew even when a valid store exists (the code that builds it changed).
    """
    cache_dir = Path(cache_dir)
    fp = cohort_fingerprint(cohort, geometry, resample_mm)
    root = store_folder(cache_dir, fp)
    if root.exists() and rebuild:
        shutil.rmtree(root)
    if root.exists():
        try:
            store = open_image_store(root, verify=verify)
            log.info("reusing image store %s", root)
            return store
        except CacheError as exc:
            log.warning("rebuilding image store: %s", exc)
            shutil.rmtree(root)
    with atomic_dir(root) as tmp:
        index = _index(cohort, geometry)
        n, s = len(index), geometry.input_size
        boxes = box_columns()
        files = {v: open(tmp / f"{v}.u8", "wb") for v in boxes}
        written = 0
        try:  # sequential writes, one patient's block at a time: memory stays flat
            for pid, rows in progress_bar(index.groupby("patient_id", sort=False), desc="ROI images",
                                          unit="patient", enabled=progress, total=index["patient_id"].nunique()):
                if rows.index[0] != written or rows.index[-1] != written + len(rows) - 1:
                    raise RuntimeError(f"ROI index of patient {pid} is not contiguous")
                pixels = cohort.load_series(pid).pixels
                for v, cols in boxes.items():
                    block = np.stack([roi_image(pixels[r.slice_index], tuple(getattr(r, c) for c in cols), geometry,
                                                zoom_to(r, resample_mm)) for r in rows.itertuples()])
                    files[v].write(block.tobytes())
                written += len(rows)
        finally:
            for f in files.values():
                f.close()
        index.to_parquet(tmp / "index.parquet", index=False)
        digests = {f"{v}.u8": sha256_file(tmp / f"{v}.u8") for v in boxes}
        digests["index.parquet"] = sha256_file(tmp / "index.parquet")
        write_json(tmp / "manifest.json", {
            "format": STORE_FORMAT, "fingerprint": fp, "count": n, "size": s, "geometry": asdict(geometry),
            "files": digests, "npc_lib": __version__, "resample_mm": resample_mm,
            "regions": {k: int(v) for k, v in index["region"].value_counts().items()},
        })
    return open_image_store(root, verify=False)


def zoom_to(row, resample_mm: float | None) -> tuple[float, float] | None:
    """The (rows, columns) zoom that takes an index row's pixel spacing to ``resample_mm`` (None: none)."""
    if resample_mm is None:
        return None
    return float(row.spacing_row_mm) / resample_mm, float(row.spacing_col_mm) / resample_mm


def _index(cohort: Cohort, geometry: Geometry) -> pd.DataFrame:
    rois = add_variant_boxes(cohort.rois, geometry)
    rois["is_max_tumour"] = mark_max_tumour(rois)
    labels = cohort.clinical.set_index("patient_id")["dm"]
    rois["label"] = rois["patient_id"].map(labels).astype(int)
    drawn_and_derived = list(dict.fromkeys(c for cols in box_columns().values() for c in cols))
    cols = ["patient_id", "label", "region", "slice_index", "sop_instance_uid", *drawn_and_derived,
            "rows", "cols", "spacing_row_mm", "spacing_col_mm", "is_max_tumour"]
    out = rois[cols].reset_index(drop=True)
    out.insert(0, "image_id", np.arange(len(out)))
    return out
