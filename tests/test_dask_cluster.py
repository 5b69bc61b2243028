"""The runner on a real Dask cluster: `dask scheduler` and `dask worker --nworkers 2` on 127.0.0.1.

Trivial notebooks keep the cluster checks fast; one test runs the whole smoke main job through
``--scheduler``. Worker deaths are real: a notebook kills the worker process that runs its kernel.
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

import nbformat
import numpy as np
import pytest

pytest.importorskip("distributed")

from npc_lib.runner import Job, run_jobs  # noqa: E402

BIN = Path(sys.executable).parent


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
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
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


def _notebook(path: Path, body: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('name = ""\nmarker = ""')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return str(path)


KILL_ONCE = ("import os, signal, pathlib, time\nm = pathlib.Path(marker)\n"
             "if marker and not m.exists():\n    m.write_text('killed once')\n    os.kill(os.getppid(), signal.SIGKILL)\n"
             "    time.sleep(30)\nprint(name)")
KILL_ALWAYS = "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)"


def _jobs(tmp_path, specs):
    return [Job(name, nb, str(tmp_path / "out" / f"{name}.ipynb"), {"name": name, "marker": marker}, phase=phase,
                cwd=str(tmp_path)) for name, nb, marker, phase in specs]


def test_jobs_run_on_the_cluster_and_the_summary_says_so(cluster, tmp_path):
    ok = _notebook(tmp_path / "ok.ipynb", "import time\ntime.sleep(1)\nprint(name)")
    info: dict = {}
    out = run_jobs(_jobs(tmp_path, [(f"j{i}", ok, "", 0) for i in range(4)]), "fp", tmp_path / "state", timeout=120,
                   progress=False, scheduler=cluster, executor_info=info)
    assert [o.status for o in out] == ["ok"] * 4
    assert info == {"kind": "dask", "address": cluster, "workers": 2}
    assert all((tmp_path / "state" / f"j{i}.json").is_file() for i in range(4))


def test_a_job_whose_worker_dies_is_retried_and_nothing_is_lost(cluster, tmp_path):
    ok = _notebook(tmp_path / "ok.ipynb", "import time\ntime.sleep(2)\nprint(name)")
    killer = _notebook(tmp_path / "kill_once.ipynb", KILL_ONCE)
    specs = [("victim", killer, str(tmp_path / "marker"), 0)] + [(f"j{i}", ok, "", 0) for i in range(3)]
    out = {o.name: o for o in run_jobs(_jobs(tmp_path, specs), "fp", tmp_path / "state", timeout=120, progress=False,
                                       scheduler=cluster)}
    assert (tmp_path / "marker").read_text() == "killed once"  # the first attempt really killed its worker
    assert out["victim"].status == "ok", out["victim"].error  # ... and the retry finished it
    assert all(out[f"j{i}"].status == "ok" for i in range(3)), {k: v.error for k, v in out.items()}


def test_a_job_that_kills_every_worker_is_recorded_and_the_next_phase_runs(cluster, tmp_path):
    ok = _notebook(tmp_path / "ok.ipynb", "print(name)")
    killer = _notebook(tmp_path / "kill.ipynb", KILL_ALWAYS)
    specs = [("killer", killer, "", 0), ("after", ok, "", 1)]
    out = {o.name: o for o in run_jobs(_jobs(tmp_path, specs), "fp", tmp_path / "state", timeout=120, progress=False,
                                       scheduler=cluster)}
    assert out["killer"].status == "failed" and "worker running it died" in out["killer"].error
    assert out["after"].status == "ok"
    state = json.loads((tmp_path / "state" / "killer.json").read_text())
    assert state["status"] == "failed"


def test_a_worker_that_cannot_see_the_project_fails_clearly(cluster, tmp_path):
    """The runner sees the notebook, the worker does not see the project folder (no shared mount)."""
    ok = _notebook(tmp_path / "ok.ipynb", "print(1)")
    job = Job("lost", ok, str(tmp_path / "out" / "lost.ipynb"), {}, cwd="/nonexistent/project")
    (out,) = run_jobs([job], "fp", tmp_path / "state", timeout=60, progress=False, scheduler=cluster)
    assert out.status == "failed" and "cannot see /nonexistent/project" in out.error and "shared" in out.error


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    from npc_lib import executors
    from npc_lib.errors import NpcError
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 3)  # the client retries a refused connection until then
    with pytest.raises(NpcError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_jobs([], "fp", tmp_path / "state", scheduler="tcp://127.0.0.1:9", progress=False)


@pytest.mark.slow
def test_the_main_job_runs_through_the_scheduler(cluster, tmp_path):
    """The main job on the two-worker cluster, on the smoke profile cut to one backbone and two
    datasets (every notebook kind, 11 executions): the backbone features and every notebook run on
    the workers, and the workers' features equal the runner's for the same seed."""
    from conftest import mini_profile
    from npc_lib.cli import main
    from npc_lib.config import load_profile
    from npc_lib.layout import RunLayout
    from npc_lib.learn.features import extract_features
    from npc_lib.learn.study import open_prepared
    root = Path(__file__).resolve().parents[1]
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "notebooks", tmp_path / "notebooks")
    profile = mini_profile(tmp_path)
    runs = RunLayout(tmp_path / "runs" / "mini")
    code = main(["run", "--profile", str(profile), "--runs", str(runs.root), "--book-root", str(tmp_path),
                 "--scheduler", cluster, "--no-book"])
    summary = json.loads(runs.summary.read_text())
    assert code == 0 and summary["failed"] == [] and summary["executed"] == 11
    assert summary["executor"] == {"kind": "dask", "address": cluster, "workers": 2}
    fingerprint = runs.read_cohort_ref()["store"]
    extracted = sorted(runs.features(fingerprint).glob("*/*.npy"))
    assert len(extracted) == 2  # one backbone x two variants, computed on the workers
    here = extract_features(open_prepared(runs.root).store, "efficientnet-lite0", load_profile(profile),
                            tmp_path / "local")  # the same seed gives the same random backbone here
    for f in extracted:
        ref = np.asarray(here[f.stem].values)
        np.testing.assert_allclose(np.load(f), ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()), err_msg=f.name)


ENV_PROBE = "import os, pathlib\npathlib.Path(marker).write_text(os.environ.get('MALLOC_TRIM_THRESHOLD_', 'unset'))"


def test_kernels_do_not_inherit_dasks_malloc_trimming(cluster, tmp_path):
    """Dask's workers run with MALLOC_TRIM_THRESHOLD_ (mmap churn for NumPy); their kernels must not."""
    from npc_lib.executors import TRIM_VARIABLE, Executor
    nb = _notebook(tmp_path / "probe.ipynb", ENV_PROBE)
    before = os.environ.get(TRIM_VARIABLE)
    for where, kwargs in (("external", {"scheduler": cluster}), ("local", {"n_jobs": 2})):
        marker = tmp_path / f"{where}.txt"
        out = run_jobs(_jobs(tmp_path, [(f"probe_{where}", nb, str(marker), 0)]), "fp", tmp_path / f"s_{where}",
                       timeout=120, progress=False, **kwargs)
        assert [o.status for o in out] == ["ok"], out
        assert marker.read_text() == "unset", where
    with Executor(jobs=2):
        assert os.environ.get(TRIM_VARIABLE) == before  # nor does the runner (its cohort generator)
