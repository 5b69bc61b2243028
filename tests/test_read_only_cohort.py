"""A cohort folder is only ever read: validate and datasets (the image store build) leave every file of a
read-only cohort byte for byte as it was, and add none (checked by hash: as root, permissions alone would
not stop a write)."""
from __future__ import annotations

import hashlib
import shutil
import stat

from npc_lib.cli import main


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_only(root):
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_commands_never_write_into_the_cohort(small_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort, cohort)
    before = _snapshot(cohort)
    _read_only(cohort)
    try:
        assert main(["validate", str(cohort)]) == 0
        assert main(["datasets", str(cohort), "--profile", "smoke", "--runs", str(tmp_path / "runs")]) == 0
        assert _snapshot(cohort) == before
    finally:
        for p in [cohort, *cohort.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert _snapshot(cohort) == before
