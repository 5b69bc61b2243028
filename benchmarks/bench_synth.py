"""Benchmark: synthetic cohort generation (budget: 441 patients × 16 slices at 256² ≤ 3 min, ≤ 2 GB).

Prints wall time, patients/s and peak RSS (parent and largest worker) for 100 and 441
patients, and the ratio to a baseline that only writes the same number of DICOM files with
constant pixels (the I/O floor), all measured in this run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from npc_lib.synth import SynthConfig, generate_cohort
from npc_lib.synth.dicom_writer import write_series


def _rss_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def io_floor(patients: int, matrix: int, slices: int, root: Path) -> float:
    pixels = np.full((slices, matrix, matrix), 1000, np.uint16)
    t0 = time.perf_counter()
    for i in range(patients):
        write_series(root / f"B{i:04d}", pixels, seed=0, patient_id=f"B{i:04d}", sex="M", age=50,
                     identifiers={"PatientName": "SYNTH^BENCH"}, study_date=dt.date(2015, 1, 1),
                     pixel_mm=230 / matrix, slice_mm=5.0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 441])
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        for n in a.sizes:
            t0 = time.perf_counter()
            generate_cohort(tmp / f"c{n}", SynthConfig(patients=n, matrix=a.matrix, slices=a.slices),
                            jobs=a.jobs, progress=False)
            wall = time.perf_counter() - t0
            floor = io_floor(n, a.matrix, a.slices, tmp / f"floor{n}")
            size_mb = sum(p.stat().st_size for p in (tmp / f"c{n}").rglob("*") if p.is_file()) / 2**20
            print(f"patients={n:4d} slices={n * a.slices:5d} matrix={a.matrix} jobs={a.jobs}: "
                  f"wall {wall:6.1f} s, {n / wall:5.2f} patients/s, {n * a.slices / wall:6.1f} slices/s; "
                  f"DICOM-write floor (1 process) {floor:5.1f} s -> generation/floor {wall / floor:4.2f}; "
                  f"on disk {size_mb:6.1f} MB; peak RSS parent {_rss_mb(resource.RUSAGE_SELF):6.0f} MB, "
                  f"largest worker {_rss_mb(resource.RUSAGE_CHILDREN):6.0f} MB")
            shutil.rmtree(tmp / f"c{n}")
            shutil.rmtree(tmp / f"floor{n}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
