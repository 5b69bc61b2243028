"""The stage graph on trivial stages: trusted reuse, what a change reruns, failure isolation, a kill then a rerun,
and an interrupt that leaves nothing running (in this process and on a local Dask cluster)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npc_lib.config import load_profile
from npc_lib.executors import Executor
from npc_lib.graph import Stage, check_graph, critical_path, upstream_of
from npc_lib.layout import RunLayout
from npc_lib.runner import run_graph
from npc_lib.stages.context import RunContext

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import graph_stages  # noqa: E402

DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from graph_stages import graph
from npc_lib.config import load_profile
from npc_lib.executors import Executor
from npc_lib.layout import RunLayout
from npc_lib.runner import run_graph, terminate_as_interrupt
from npc_lib.stages.context import RunContext
ctx = RunContext(load_profile("smoke"), RunLayout(Path(sys.argv[1])), None, Path(sys.argv[3]).parent)
try:
    with terminate_as_interrupt(), Executor(int(sys.argv[2])) as ex:
        recs = run_graph(graph(sys.argv[4]), ctx, ex, progress=False)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
print(json.dumps({k: r.status for k, r in recs.items()}))
"""


def _ctx(root: Path, epochs: int = 2) -> RunContext:
    return RunContext(load_profile("smoke", {"train.epochs": epochs}), RunLayout(root), None, TESTS.parent)


def _run(root: Path, kind: str = "plain", epochs: int = 2, jobs: int = 1) -> dict:
    with Executor(jobs) as ex:
        return {k: r.status for k, r in run_graph(graph_stages.graph(kind), _ctx(root, epochs), ex, False).items()}


def _log(root: Path) -> list[str]:
    path = root / "log.txt"
    return path.read_text().split() if path.exists() else []


def _driver(root: Path, jobs: int, kind: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(root), str(jobs), str(TESTS), kind],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_unchanged_stages_are_reused_and_a_changed_key_reruns_what_is_downstream(tmp_path):
    assert set(_run(tmp_path).values()) == {"ran"}
    assert set(_run(tmp_path).values()) == {"reused"} and len(_log(tmp_path)) == 5, "nothing ran twice"
    status = _run(tmp_path, epochs=3)  # stage a reads train.epochs: a and everything downstream of it rerun
    assert status == {"a": "ran", "b": "ran", "c": "ran", "d": "ran", "e": "reused"}
    assert (tmp_path / "a.txt").read_text() == "a 3\n"


def test_a_damaged_output_is_written_again_and_its_unchanged_downstream_reused(tmp_path, caplog):
    _run(tmp_path)
    (tmp_path / "b.txt").write_text("damaged\n")
    status = _run(tmp_path)
    assert status["b"] == "ran" and status["d"] == "reused" and status["a"] == "reused"
    assert (tmp_path / "b.txt").read_text() == "b 2\n"
    assert any("b.txt was changed since the stage wrote it" in r.message for r in caplog.records)
    (tmp_path / "d.txt").unlink()
    assert _run(tmp_path)["d"] == "ran"


@pytest.mark.parametrize("jobs", [1, 2], ids=["serial", "local_cluster"])
def test_a_failure_skips_what_needs_it_and_the_rest_goes_on(tmp_path, jobs):
    status = _run(tmp_path, "failing", jobs=jobs)
    assert status == {"a": "ran", "b": "ran", "c": "failed", "d": "skipped", "e": "ran"}
    again = _run(tmp_path, "failing", jobs=jobs)  # a failure is never reused: it runs again
    assert again == {"a": "reused", "b": "reused", "c": "failed", "d": "skipped", "e": "reused"}
    assert _log(tmp_path).count("c") == 2 and "d" not in _log(tmp_path)


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    proc = _driver(tmp_path, 1, "plain")
    deadline = time.time() + 120
    while len(list((tmp_path / "stages").glob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done = {p.stem for p in (tmp_path / "stages").glob("*.json")}
    assert len(done) >= 2
    before = _log(tmp_path)
    proc = _driver(tmp_path, 1, "plain")
    out, err = proc.communicate(timeout=120)
    status = json.loads(out.strip().splitlines()[-1])
    rerun = _log(tmp_path)[len(before):]
    assert {k for k, v in status.items() if v == "reused"} == done and not set(rerun) & done
    assert sorted(rerun) == sorted(set("abcde") - done)


@pytest.mark.parametrize("jobs", [1, 2], ids=["serial", "local_cluster"])
def test_an_interrupt_leaves_no_process_behind_and_says_one_line(tmp_path, jobs):
    proc = _driver(tmp_path, jobs, "child")
    pids = tmp_path / "children.txt"
    deadline = time.time() + 120
    while not (pids.exists() and pids.read_text().strip()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pids.read_text().split()[0])
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted"], err[-2000:]

    def group_alive() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 20
    while time.time() < deadline and (group_alive() or Path(f"/proc/{child}").exists()):
        time.sleep(0.2)
    left = Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]
    if group_alive():
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left and not group_alive(), "a process outlived the interrupted run"


def test_the_graph_refuses_a_cycle_an_unknown_need_and_a_repeated_name():
    def s(name, *needs):
        return Stage(name, graph_stages.write, (name,), needs=needs)
    with pytest.raises(ValueError, match="cycle"):
        check_graph([s("a", "b"), s("b", "a")])
    with pytest.raises(ValueError, match="needs z"):
        check_graph([s("a", "z")])
    with pytest.raises(ValueError, match="twice"):
        check_graph([s("a"), s("a")])
    order = [x.name for x in check_graph([s("d", "b", "c"), s("b", "a"), s("c", "a"), s("a")])]
    assert order.index("a") < order.index("b") < order.index("d") and order.index("c") < order.index("d")
    assert [x.name for x in upstream_of(graph_stages.graph(), ["b"])] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown stage"):
        upstream_of(graph_stages.graph(), ["nope"])


def test_the_critical_path_follows_the_input_that_ended_last():
    stages = graph_stages.graph()
    rec = [{"name": "a", "started": 0, "seconds": 1}, {"name": "b", "started": 1, "seconds": 5},
           {"name": "c", "started": 1, "seconds": 1}, {"name": "d", "started": 6, "seconds": 1},
           {"name": "e", "started": 0, "seconds": 2}]
    assert critical_path(rec, stages) == ["a", "b", "d"]


def _pool_in_a_daemon(out):
    from npc_lib.children import spawn_pool
    with spawn_pool(2) as pool:
        out.put((pool.starmap(pow, [(2, 3), (3, 2)]), pool.apply(divmod, (7, 2)), list(pool.imap(abs, [-1, 2]))))


def test_a_daemonic_worker_runs_a_pools_tasks_itself():
    """``dask worker`` starts daemonic processes, which may not have children: a stage's pool runs in it."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_pool_in_a_daemon, args=(out,), daemon=True)
    p.start()
    p.join(60)
    assert p.exitcode == 0 and out.get(timeout=5) == ([8, 9], (3, 1), [1, 2])
