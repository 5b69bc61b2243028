"""Benchmark: rois-from-masks (budget: 441 patients × 16 slices at 512² in ≤ 60 s on 2 cores).

Generates a synthetic cohort (default 60 patients × 16 slices at 512², to keep the set-up short),
writes its masks as NIfTI and as NRRD label maps, then times ``rois_from_masks`` for each format
against the floor it cannot beat: reading every series' DICOM headers (which the command must
do to match the grids). Prints seconds, the ratio to the floor, and the projection to 441
patients, all measured in this run.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from npc_lib.data.dicom import read_series
from npc_lib.data.mask_import import LPS_FROM_RAS, Grid, rois_from_masks
from npc_lib.synth import SynthConfig, generate_cohort


def write_label_maps(cohort: Path, out: Path, fmt: str) -> None:
    import nibabel as nib
    import nrrd
    out.mkdir()
    for f in sorted((cohort / "masks").glob("*.npz")):
        with np.load(f) as z:
            labels, sops = z["labels"], [str(u) for u in z["sop_instance_uids"]]
        series = read_series(cohort / "dicom" / f.stem, load_pixels=False)
        vol = labels[[sops.index(u) for u in series.sop_instance_uids]].transpose(2, 1, 0).astype(np.uint8)
        g = Grid.of(series)
        aff = np.eye(4)
        aff[:3, 0], aff[:3, 1], aff[:3, 2], aff[:3, 3] = g.col_step, g.row_step, g.positions[1] - g.positions[0], \
            g.positions[0]
        if fmt == "nifti":
            nib.save(nib.Nifti1Image(np.ascontiguousarray(vol), LPS_FROM_RAS @ aff), str(out / f"{f.stem}.nii.gz"))
        else:
            nrrd.write(str(out / f"{f.stem}.nrrd"), vol, {"space": "left-posterior-superior",
                                                          "space directions": aff[:3, :3].T, "space origin": aff[:3, 3]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--slices", type=int, default=16)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-masks-"))
    try:
        cohort = tmp / "cohort"
        t0 = time.perf_counter()
        generate_cohort(cohort, SynthConfig(patients=a.patients, matrix=a.matrix, slices=a.slices), jobs=2,
                        progress=False)
        print(f"set-up: {a.patients} patients × {a.slices} slices at {a.matrix}² generated in "
              f"{time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        for pid in sorted(p.name for p in (cohort / "dicom").iterdir()):
            read_series(cohort / "dicom" / pid, load_pixels=False)
        floor = time.perf_counter() - t0
        print(f"  floor: reading all DICOM headers  {floor:6.1f} s")
        for fmt in ("nifti", "nrrd"):
            write_label_maps(cohort, tmp / fmt, fmt)
            t0 = time.perf_counter()
            table = rois_from_masks(cohort, tmp / fmt, fmt, {"npc": [1], "cmln": [3, 4]}, tmp / f"{fmt}.csv",
                                    progress=False)
            wall = time.perf_counter() - t0
            print(f"  {fmt:6s} rois-from-masks          {wall:6.1f} s  x{wall / floor:4.2f} of the floor; "
                  f"{len(table)} rectangles; projected 441 patients: {wall * 441 / a.patients:5.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
