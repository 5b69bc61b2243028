"""The runner on a real Dask cluster: `dask scheduler` and `dask worker --nworkers 2` on 127.0.0.1.

Trivial stages keep the cluster checks fast; one test runs the mini main job through ``--scheduler``. Worker
deaths are real: a stage kills the worker process that runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import graph_stages  # noqa: E402
from jobs.kill_everywhere import STOP_AFTER  # noqa: E402


def _wait(predicate, seconds, what):
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))}
    info = home / "scheduler.json"
    logs = open(home / "cluster.log", "w")
    sched = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(info)], env=env, stdout=logs,
                             stderr=subprocess.STDOUT, start_new_session=True)
    procs = [sched]
    try:
        _wait(info.exists, 60, "the scheduler file")
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--no-dashboard", "--local-directory", str(home / "work")], env=env,
                                      stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        from distributed import Client
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        logs.close()


def _ctx(root: Path):
    from npc_lib.config import load_profile
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    root.mkdir(parents=True, exist_ok=True)
    return RunContext(load_profile("smoke"), RunLayout(root), None, Path(__file__).resolve().parents[1])


def _run(stages, root: Path, **executor):
    from npc_lib.executors import Executor
    from npc_lib.runner import run_graph
    with Executor(**executor) as ex:
        return run_graph(stages, _ctx(root), ex, progress=False), ex.info.as_dict()


def test_stages_run_on_the_cluster_and_the_summary_says_so(cluster, tmp_path):
    from npc_lib.stage import Stage
    recs, info = _run([Stage(f"s{i}", graph_stages.where, (f"s{i}",)) for i in range(4)], tmp_path, scheduler=cluster)
    assert [r.status for r in recs.values()] == ["ran"] * 4
    assert {r.info["pid"] for r in recs.values()} - {os.getpid()}, "the stages ran in the workers"
    assert info["kind"] == "dask" and info["address"] == cluster and info["workers"] == 2


def test_a_stage_whose_worker_dies_is_retried_and_nothing_is_lost(cluster, tmp_path):
    from npc_lib.stage import Stage
    stages = [Stage("victim", graph_stages.kill_worker_once, ("victim",))] + \
        [Stage(f"s{i}", graph_stages.write, (f"s{i}", 1.0)) for i in range(3)]
    recs, _ = _run(stages, tmp_path, scheduler=cluster)
    assert (tmp_path / "victim.killed").read_text() == "killed once"  # the first attempt really killed its worker
    assert recs["victim"].status == "ran", recs["victim"].error  # ... and the retry finished it
    assert all(recs[f"s{i}"].status == "ran" for i in range(3))


def test_a_stage_that_kills_every_worker_is_recorded_and_the_others_go_on(cluster, tmp_path):
    from npc_lib.stage import Stage
    stages = [Stage("killer", graph_stages.kill_worker, ("killer",)),
              Stage("after", graph_stages.write, ("after",), needs=("killer",)),
              Stage("beside", graph_stages.write, ("beside",))]
    recs, _ = _run(stages, tmp_path, scheduler=cluster)
    assert recs["killer"].status == "failed" and "worker running it died" in recs["killer"].error
    assert recs["after"].status == "skipped" and "killer did not finish" in recs["after"].error
    # the stage beside goes on: it ran (or, when the killed workers' restart made the graph start again after it had
    # finished, its finished record is reused)
    assert recs["beside"].status in ("ran", "reused") and (tmp_path / "beside.txt").is_file()


def test_a_worker_that_cannot_see_the_project_fails_clearly(cluster, tmp_path):
    """The runner sees the run folder, the worker does not see the project folder (no shared mount)."""
    from dataclasses import replace

    from npc_lib.stage import Stage
    from npc_lib.stages.notebooks import execute
    from npc_lib.executors import Executor
    from npc_lib.runner import run_graph
    ctx = replace(_ctx(tmp_path), book_root=Path("/nonexistent/project"))
    with Executor(scheduler=cluster) as ex:
        recs = run_graph([Stage("notebook:lost", execute, ("03_train", "NPC"))], ctx, ex, progress=False)
    out = recs["notebook:lost"]
    assert out.status == "failed" and "cannot see /nonexistent/project" in out.error and "shared" in out.error


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    from npc_lib import executors
    from npc_lib.errors import NpcError
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 3)  # the client retries a refused connection until then
    with pytest.raises(NpcError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        _run([], tmp_path, scheduler="tcp://127.0.0.1:9")


@pytest.mark.slow
def test_the_main_job_runs_through_the_scheduler_and_equals_the_local_run(cluster, mini_run, tmp_path):
    """The main job on the two-worker cluster, on the smoke profile cut to one backbone and two datasets, up to the
    stages of the compared tables and two notebooks (a training page and the evaluation; the smoke book runs every
    page on the local cluster): every stage runs on the workers, and the tables equal those of the same profile run
    on the local cluster (the shared mini run): the same seeds give the same random backbone anywhere."""
    from npc_lib.cli import main
    from npc_lib.layout import RunLayout
    root = Path(__file__).resolve().parents[1]
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "notebooks", tmp_path / "notebooks")
    runs = RunLayout(tmp_path / "runs" / "mini")
    stop = [a for name in (*STOP_AFTER, "notebook:03_train:NPC") for a in ("--stop-after", name)]
    code = main(["run", "--profile", str(mini_run.profile), "--runs", str(runs.root), "--book-root", str(tmp_path),
                 "--scheduler", cluster, "--no-book", *stop])
    summary = json.loads(runs.summary.read_text())
    assert code == 0 and summary["failed"] == [] and summary["executed"] == 2
    assert summary["executor"]["kind"] == "dask" and summary["executor"]["workers"] == 2
    hosts = {json.loads(p.read_text())["host"] for p in runs.stages.glob("*__*.json")}
    assert all(not h.endswith(f":{os.getpid()}") for h in hosts), "the stages ran on the workers"
    for name in ("table2", "metrics", "negative_control", "resplits", "survival"):
        assert runs.table(name).read_bytes() == mini_run.layout.table(name).read_bytes(), name


def test_kernels_do_not_inherit_dasks_malloc_trimming(cluster, tmp_path):
    """Dask's workers run with MALLOC_TRIM_THRESHOLD_ (mmap churn for NumPy); their kernels must not."""
    from dataclasses import replace

    from npc_lib.executors import TRIM_VARIABLE, Executor
    from npc_lib.runner import run_graph
    from npc_lib.stage import Stage
    from npc_lib.stages.notebooks import execute
    before = os.environ.get(TRIM_VARIABLE)
    for where, kwargs in (("external", {"scheduler": cluster}), ("local", {"jobs": 2})):
        marker = tmp_path / f"{where}.txt"
        book = graph_stages.trivial_book(tmp_path / where, "import os, pathlib\npathlib.Path("
                                         f"{str(marker)!r}).write_text(os.environ.get('MALLOC_TRIM_THRESHOLD_', 'unset'))")
        ctx = replace(_ctx(book / "runs"), book_root=book)
        with Executor(**kwargs) as ex:
            recs = run_graph([Stage("notebook:probe", execute, ("03_train", "NPC"))], ctx, ex, progress=False)
        assert recs["notebook:probe"].status == "ran", recs["notebook:probe"].error
        assert marker.read_text() == "unset", where
    with Executor(jobs=2):
        assert os.environ.get(TRIM_VARIABLE) == before  # nor does the runner (its cohort generator)
