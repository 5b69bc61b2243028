"""Shared fixtures: small synthetic cohorts generated once per test session, and the shared study runs, which
start in the background as soon as the session starts (one at a time, in their own processes) while the tests that
do not need them run; those that do run last."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from npc_lib.stage import STAGE_VARIABLE
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
def small_cohort(shared_runs) -> Path:
    """40 patients, 64 px, 8 slices (``SMALL``, generated in the background): read-only."""
    job = shared_runs.wait("small")
    assert job.code == 0, f"the small cohort's generation ended with {job.code}:\n{job.tail()}"
    return job.runs


@pytest.fixture
def cohort_copy(tiny_cohort, tmp_path) -> Path:
    """A writable copy of the tiny cohort."""
    dst = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, dst)
    return dst


def audit_environment(runs: Path, folder: Path) -> dict:
    """The variables under which the processes a run starts record what each stage reads under ``runs``
    (``tests/audit/sitecustomize.py``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"NPC_AUDIT_READS": str(folder), "NPC_AUDIT_ROOT": str(Path(runs).resolve()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "audit"),
                                                        os.environ.get("PYTHONPATH")]))}


# the background's jobs in the order it runs them, each with the fixture that waits for it; the tests are ordered
# the same way (those that need none first), except that the small cohort, ready within seconds, moves no test
SHARED_RUNS = {"small": "small_cohort", "smoke_runs": "smoke_runs", "mini": "mini_run", "smoke": "smoke_book",
               "serial": "serial_smoke", "null": "null_control_run", "killed": "killed_run"}
NEEDS = {"smoke_runs": ("small",), "serial": ("smoke",), "killed": ("mini",)}
UNORDERED = ("small",)


def _needs(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """The tests that read a shared run go last, in the order the background finishes the runs (the order within
    each part is kept), so the runs are built while the other tests run."""
    order = [f for name, f in SHARED_RUNS.items() if name not in UNORDERED]
    items.sort(key=lambda item: max((order.index(f) + 1 for f in order if _needs(item, f)), default=0))


@dataclass
class SharedRun:
    """A job (the main job by ``npc-study``, or a script) run in its own process for the tests that only read it."""

    name: str
    root: Path
    runs: Path
    argv: list  # after the interpreter
    env: dict
    log: Path
    after: object = None  # called in the background when the process has ended well, before any test sees the run
    done: threading.Event = field(default_factory=threading.Event)
    code: int | None = None
    error: str = ""  # what went wrong in the background itself
    info: dict = field(default_factory=dict)

    def tail(self, lines: int = 40) -> str:
        """The end of the job's output, and what went wrong around it."""
        text = self.log.read_text(errors="replace").splitlines() if self.log.is_file() else []
        return "\n".join([*text[-lines:], self.error])


class Background:
    """Runs the session's shared runs one after the other in a thread; a fixture waits for its own."""

    def __init__(self, jobs: list[SharedRun]):
        self.jobs = {job.name: job for job in jobs}
        # the environment as the session starts: a test running a stage in this process names it in NPC_STAGE
        # while it runs, and a job started at that moment would inherit the name (and be audited as that stage)
        self.environ = {k: v for k, v in os.environ.items() if k != STAGE_VARIABLE}
        self.process: subprocess.Popen | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run_all, daemon=True)
        self.thread.start()

    def _run_all(self) -> None:
        for job in self.jobs.values():
            try:
                if not self.stopped:
                    with open(job.log, "w") as log:
                        self.process = subprocess.Popen([sys.executable, *job.argv],
                                                        env={**self.environ, **job.env}, stdout=log,
                                                        stderr=subprocess.STDOUT, start_new_session=True)
                        job.code = self.process.wait()
                    if job.code == 0 and job.after is not None:
                        job.after()
            except Exception as exc:  # noqa: BLE001 - the job's fixture reports it; the next jobs still run
                job.code, job.error = -1, f"{type(exc).__name__}: {exc}"
            finally:
                job.done.set()

    def wait(self, name: str) -> SharedRun:
        job = self.jobs[name]
        job.done.wait()
        return job

    def stop(self) -> None:
        """End a run still going (an interrupted session) with every process it started."""
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)


def _project(root: Path, book: bool) -> Path:
    """A copy of the project skeleton the main job needs (the book's chapters only when it builds the book)."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    if book:
        shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("executed"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    return root


def _jobs(needed: set, tmp_path_factory) -> list[SharedRun]:
    """The background's jobs for the shared runs ``needed``, in ``SHARED_RUNS`` order."""
    for name, before in NEEDS.items():
        if name in needed:
            needed |= set(before)
    jobs: dict[str, SharedRun] = {}
    if "small" in needed:
        out = tmp_path_factory.mktemp("small") / "cohort"
        argv = ["-m", "npc_lib", "synth", str(out), "--patients", str(SMALL.patients), "--matrix", str(SMALL.matrix),
                "--slices", str(SMALL.slices), "--seed", str(SMALL.seed), "--jobs", "2"]
        jobs["small"] = SharedRun("small", out.parent, out, argv, {}, out.parent / "job.log")
    if "smoke_runs" in needed:
        # the whole smoke grid (8 datasets x 4 backbones, random init) trained through the CLI
        runs = tmp_path_factory.mktemp("runs") / "smoke"
        argv = ["-m", "npc_lib", "train", str(jobs["small"].runs), "--profile", "smoke", "--runs", str(runs),
                "--weights", "none"]
        jobs["smoke_runs"] = SharedRun("smoke_runs", runs.parent, runs, argv, {}, runs.parent / "job.log")
    if "mini" in needed:
        # the mini profile's main job (local Dask cluster, no book): the reference of the kill and cluster tests
        root = _project(tmp_path_factory.mktemp("mini_project"), book=False)
        runs = root / "runs" / "mini"
        argv = ["-m", "npc_lib", "run", "--profile", str(mini_profile(root)), "--runs", str(runs),
                "--book-root", str(root), "--no-book"]
        jobs["mini"] = SharedRun("mini", root, runs, argv, audit_environment(runs, root / "reads"), root / "run.log")
    if "smoke" in needed:
        # the profile's own weights: offline, the paper's four fall back to random initialisation and
        # EfficientNet-Lite0 runs with its bundled ImageNet weights, as on a user's machine
        root = _project(tmp_path_factory.mktemp("project"), book=True)
        runs = root / "runs" / "smoke"
        argv = ["-m", "npc_lib", "run", "--profile", "smoke", "--runs", str(runs), "--book-root", str(root)]
        jobs["smoke"] = SharedRun("smoke", root, runs, argv, audit_environment(runs, root / "reads"), root / "run.log")
    if "serial" in needed:
        from jobs import serial_smoke
        smoke = jobs["smoke"]
        runs = tmp_path_factory.mktemp("serial") / "smoke"
        jobs["serial"] = SharedRun("serial", smoke.root, runs, serial_smoke.argv(runs, smoke.root), {},
                                   runs.parent / "job.log")
        smoke.after = functools.partial(_copy_for_serial, jobs["serial"], smoke.runs)
    if "killed" in needed:  # the mini profile killed in every stage, in the mini project
        mini = jobs["mini"]
        argv = [str(ROOT / "tests" / "jobs" / "kill_everywhere.py"), str(mini.root / "mini.yaml"),
                str(mini.root / "runs" / "killed"), str(mini.root), str(mini.root / "killed.json")]
        jobs["killed"] = SharedRun("killed", mini.root, mini.root / "runs" / "killed", argv, {},
                                   mini.root / "killed.log")
    if "null" in needed:
        root = tmp_path_factory.mktemp("null_control")
        jobs["null"] = SharedRun("null", root, root, [str(ROOT / "tests" / "jobs" / "null_control.py"), str(root)],
                                 {}, root / "job.log")
    return [jobs[name] for name in SHARED_RUNS if name in jobs]


def _copy_for_serial(job: SharedRun, graph: Path) -> None:
    from jobs import serial_smoke
    job.info["dropped"] = serial_smoke.copy_for_serial(graph, job.runs)


@pytest.fixture(scope="session", autouse=True)
def shared_runs(request, tmp_path_factory):
    """Starts, at the session's first test, the shared runs that some selected test reads."""
    needed = {name for name, fixture in SHARED_RUNS.items()
              if any(_needs(item, fixture) for item in request.session.items)}
    background = Background(_jobs(needed, tmp_path_factory))
    yield background
    background.stop()


@pytest.fixture(scope="session")
def smoke_book(shared_runs):
    """A copy of the project skeleton, the smoke study run in it (main job), and the built book:
    (project folder, run folder, exit code)."""
    pytest.importorskip("papermill")
    pytest.importorskip("jupyter_book")
    job = shared_runs.wait("smoke")
    if job.code != 0:
        print(f"the smoke run ended with {job.code}:\n{job.tail()}")
    return job.root, job.runs, job.code


@dataclass
class MiniRun:
    """A finished main job on the mini profile: its profile file, run folder and project folder."""

    profile: Path
    layout: object
    root: Path


@pytest.fixture(scope="session")
def mini_run(shared_runs) -> MiniRun:
    """The mini profile's main job, run once per session for the tests that only read it."""
    pytest.importorskip("papermill")
    from npc_lib.layout import RunLayout
    job = shared_runs.wait("mini")
    assert job.code == 0, f"the mini run ended with {job.code}:\n{job.tail()}"
    return MiniRun(job.root / "mini.yaml", RunLayout(job.runs), job.root)


@pytest.fixture(scope="session")
def smoke_runs(shared_runs) -> Path:
    """The whole smoke grid (8 datasets x 4 backbones, random init) trained through the CLI on ``small_cohort``."""
    job = shared_runs.wait("smoke_runs")
    assert job.code == 0, f"the smoke grid's training ended with {job.code}:\n{job.tail()}"
    return job.runs


@pytest.fixture(scope="session")
def null_control_run(shared_runs) -> Path:
    """The negative control's folder after ``tests/jobs/null_control.py`` ran in it."""
    job = shared_runs.wait("null")
    assert job.code == 0, f"the negative control job ended with {job.code}:\n{job.tail()}"
    return job.runs


@pytest.fixture(scope="session")
def killed_run(shared_runs):
    """(run layout, outcome) of ``tests/jobs/kill_everywhere.py`` on the mini profile."""
    import json

    from npc_lib.layout import RunLayout
    job = shared_runs.wait("killed")
    assert job.code == 0, f"the kill job ended with {job.code}:\n{job.tail()}"
    return RunLayout(job.runs), json.loads((job.root / "killed.json").read_text())


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
