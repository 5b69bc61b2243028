"""Stage ``cohort``: the patients.

Reads: the profile's ``cohort`` block (size, matrix, slices, scenario, seed), or a user's cohort folder.
Writes: ``cohort/`` (the synthetic DICOM cohort with its ground truth) when no cohort folder is given.
Serves: the paper's §2.1 (patients, Table 1); on a user's cohort the stage only fingerprints the folder, so
a changed file makes every stage downstream run again.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from npc_lib.errors import CohortError
from npc_lib.stage import Stage
from npc_lib.stages.context import RunContext
from npc_lib.synth import ensure_cohort


def user_cohort_fingerprint(ctx: RunContext) -> str:
    """What a user's cohort folder holds: its tables' bytes and every other file's name, size and time."""
    if ctx.synthetic:
        return "synthetic"
    root = Path(ctx.cohort_dir)
    if not root.is_dir():
        raise CohortError(f"cohort folder {root} does not exist")
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        if path.suffix == ".csv" and path.parent == root:
            h.update(path.read_bytes())
    return h.hexdigest()


def make_cohort(ctx: RunContext) -> list[Path]:
    """Generate the profile's synthetic cohort anew (this stage runs only when its digest changed), or
    check that the user's cohort folder exists."""
    path = ensure_cohort(ctx.profile, ctx.cohort_dir, ctx.layout, progress=ctx.progress, fresh=ctx.synthetic)
    return [path] if ctx.synthetic else []


def stages(ctx: RunContext, known: frozenset = frozenset()) -> list[Stage]:
    return [Stage("cohort", make_cohort, reads=("cohort",), extra=user_cohort_fingerprint,
                  serves="§2.1 patients: the cohort behind Table 1")]
