"""Shared fixtures: small synthetic cohorts generated once per test session."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from npc_lib.synth import SynthConfig, generate_cohort

ROOT = Path(__file__).resolve().parents[1]

TINY = SynthConfig(patients=12, matrix=48, slices=6, seed=7)
SMALL = SynthConfig(patients=40, matrix=64, slices=8, seed=11)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """12 patients, 48 px, 6 slices: for mutation tests (copy it before changing it)."""
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    generate_cohort(out, TINY, progress=False)
    return out


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """40 patients, 64 px, 8 slices: read-only."""
    out = tmp_path_factory.mktemp("small") / "cohort"
    generate_cohort(out, SMALL, jobs=2, progress=False)
    return out


@pytest.fixture
def cohort_copy(tiny_cohort, tmp_path) -> Path:
    """A writable copy of the tiny cohort."""
    dst = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, dst)
    return dst


@contextmanager
def audited_reads(runs: Path, folder: Path):
    """While the block runs, the processes it starts record what each stage reads under ``runs``
    (``tests/audit/sitecustomize.py``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    changes = {"NPC_AUDIT_READS": str(folder), "NPC_AUDIT_ROOT": str(Path(runs).resolve()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "audit"),
                                                           os.environ.get("PYTHONPATH")]))}
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield folder
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def smoke_runs(small_cohort, tmp_path_factory) -> Path:
    """The whole smoke grid (8 datasets x 4 backbones, random init) trained through the CLI."""
    from npc_lib.cli import main
    runs = tmp_path_factory.mktemp("runs") / "smoke"
    code = main(["train", str(small_cohort), "--profile", "smoke", "--runs", str(runs), "--weights", "none"])
    assert code == 0
    return runs


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """A copy of the project skeleton, the smoke study run in it (main job), and the built book."""
    pytest.importorskip("papermill")
    pytest.importorskip("jupyter_book")
    from npc_lib.cli import main
    root = tmp_path_factory.mktemp("project")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("executed"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    runs = root / "runs" / "smoke"
    # the profile's own weights: offline, the paper's four fall back to random initialisation and
    # EfficientNet-Lite0 runs with its bundled ImageNet weights, as on a user's machine
    with audited_reads(runs, root / "reads"):
        code = main(["run", "--profile", "smoke", "--runs", str(runs), "--book-root", str(root)])
    return root, runs, code


@dataclass
class MiniRun:
    """A finished main job on the mini profile: its profile file, run folder and project folder."""

    profile: Path
    layout: object
    root: Path


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> MiniRun:
    """The mini profile's main job (local Dask cluster, no book), run once per session for the tests that only
    read it (the reference of the kill and cluster tests)."""
    pytest.importorskip("papermill")
    from npc_lib.cli import main
    from npc_lib.layout import RunLayout
    root = tmp_path_factory.mktemp("mini_project")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    profile = mini_profile(root)
    layout = RunLayout(root / "runs" / "mini")
    with audited_reads(layout.root, root / "reads"):
        assert main(["run", "--profile", str(profile), "--runs", str(layout.root), "--book-root", str(root),
                     "--no-book"]) == 0
    return MiniRun(profile, layout, root)


def mini_profile(folder: Path, name: str = "mini", **changes) -> Path:
    """The smoke profile cut to one backbone (EfficientNet-Lite0, random weights) and two datasets, without the
    second centre (the smoke book covers it): 9 notebooks, written as a .yaml file in ``folder``."""
    import yaml

    from npc_lib.config import load_profile
    raw = load_profile("smoke").as_dict()
    raw.update(name=name, weights="none", backbones=["efficientnet-lite0"], datasets=["NPC", "CMLN"],
               model_choice="efficientnet-lite0", resplits=2, negative_control={"backbones": ["efficientnet-lite0"]},
               external=None)
    raw.update(changes)
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
