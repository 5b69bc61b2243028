"""SIGKILL at the cohort, image-store, head-grid and notebook phases, then a rerun: the run finishes and
its tables equal those of an uninterrupted run of the same seed, byte for byte."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import mini_profile

pytest.importorskip("papermill")
pytest.importorskip("keras")

from npc_lib.layout import RunLayout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("table2", "metrics", "negative_control")


def _start(profile: Path, runs: Path) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).with_name("npc-study")), "run", "--profile", str(profile), "--runs", str(runs),
           "--no-book", "--jobs", "1", "--book-root", str(ROOT)]
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _kill_when(proc: subprocess.Popen, reached, what: str, seconds: float = 300) -> None:
    """SIGKILL the runner and its kernels as soon as ``reached()`` holds."""
    deadline = time.time() + seconds
    while not reached():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stdout.read()[-2000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _finish(profile: Path, runs: Path) -> str:
    proc = _start(profile, runs)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_kill_at_four_phases_then_rerun_gives_the_uninterrupted_tables(tmp_path):
    profile = mini_profile(tmp_path, "killed")
    killed = RunLayout(tmp_path / "killed")
    phases = [
        ("the cohort", lambda: any(p.name.startswith(".cohort.partial") and any(p.rglob("*.dcm"))
                                   for p in killed.root.glob(".cohort.partial*"))),
        ("the image store", lambda: any(killed.cache.glob(".images-*.partial-*/*.u8"))),
        ("the head grid", lambda: len(list(killed.models.glob("*/run.json"))) >= 1),
        ("the notebooks", lambda: len(list(killed.job_state.glob("*.json"))) >= 2),
    ]
    for what, reached in phases:
        _kill_when(_start(profile, killed.root), reached, what)
    _finish(profile, killed.root)
    reference = RunLayout(tmp_path / "reference")
    _finish(profile, reference.root)
    for name in TABLES:
        assert killed.table(name).read_bytes() == reference.table(name).read_bytes(), name
    assert not list(killed.root.rglob("*.partial*")), "no partial file or folder may remain"
