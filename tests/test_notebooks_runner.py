"""Notebook structure, and the papermill runner's resume and failure isolation (tiny notebooks)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_all_eight_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_cohort", "02_roi_datasets", "03_train", "04_evaluate",
                                           "05_gradcam", "06_explore", "07_beyond", "08_travel"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    code = [c for c in cells if c.cell_type == "code"]
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "title + overview first"
    assert len(cells[0].source.split("\n\n")) >= 2, "the title cell needs an overview paragraph"
    params = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and cells[params[0]].cell_type == "code"
    assert code[0].source.lstrip().startswith(("import", "from")), "imports come first"
    assert cells[params[0] - 1] is code[0] and cells[params[0] + 1].cell_type == "code", \
        "imports → parameters → derived settings"
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len(headings) >= 3 and headings[-1] == "## Summary"
    assert len(code) <= 15
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    src = "\n".join(c.source for c in code)
    assert "def " not in src, "logic belongs in npc_lib"
    # no statistics in a cell: they are computed by npc_lib and handed over (e.g. ev.numbers)
    stats = re.findall(r"\.(mean|sum|median|std|quantile|groupby|pivot_table|value_counts|min|max)\(", src)
    assert not stats, f"statistics in the cells: {stats}"
    # the cookbook skeleton: Overview and Prerequisites first, Summary and What next last
    assert "\n## Overview\n" in cells[0].source and "\n## Prerequisites\n" in cells[0].source
    assert "\n## What next\n" in cells[-1].source
    # two hops: a figure is drawn in the cell that shows it, by one npc_lib.show.plots call
    # (or a widget's static view), never read back from a PNG written elsewhere
    assert "Image(filename" not in src and ".png" not in src
    for line in src.splitlines():
        if line.startswith("report.show("):
            assert line.startswith(("report.show(plots.", "report.show(roc.", "report.show(slices.", "report.show(cams.")), line
    for default in ('profile = ""', 'runs_dir = ""'):
        assert default in cells[params[0]].source


def _trivial_notebook(path: Path, fail: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('log = ""\nname = ""')
    p.metadata["tags"] = ["parameters"]
    body = ("import time\nwith open(log, 'a') as f:\n    f.write(name + '\\n')\ntime.sleep(0.5)\n"
            + ("raise ValueError('planted failure in ' + name)\n" if fail else ""))
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


DRIVER = """
import sys, json
from pathlib import Path
from npc_lib.runner import Job, run_jobs
root = Path(sys.argv[1])
jobs = [Job(f"job{i}", str(root / ("bad.ipynb" if i == 2 else "ok.ipynb")), str(root / "out" / f"job{i}.ipynb"),
            {"log": str(root / "log.txt"), "name": f"job{i}"}) for i in range(int(sys.argv[2]))]
out = run_jobs(jobs, "fp1", root / "state", n_jobs=1, timeout=120, progress=False)
print(json.dumps({o.name: o.status for o in out}))
"""


def _driver(tmp_path, n):
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})


def test_runner_resumes_after_a_kill_and_isolates_failures(tmp_path):
    _trivial_notebook(tmp_path / "ok.ipynb")
    _trivial_notebook(tmp_path / "bad.ipynb", fail=True)
    log = tmp_path / "log.txt"
    proc = _driver(tmp_path, 6)
    deadline = time.time() + 180
    while time.time() < deadline:  # kill once 3 jobs have a state file
        if len(list((tmp_path / "state").glob("*.json"))) >= 3 if (tmp_path / "state").exists() else False:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in (tmp_path / "state").glob("*.json")}
    assert len(finished) >= 3
    before = log.read_text().split()
    proc = _driver(tmp_path, 6)
    out, err = proc.communicate(timeout=300)
    status = json.loads(out.strip().splitlines()[-1])
    assert status["job2"] == "failed" and all(status[f"job{i}"] in ("ok", "skipped") for i in (0, 1, 3, 4, 5))
    after = log.read_text().split()[len(before):]
    ok_done = {n for n in finished if json.loads((tmp_path / "state" / f"{n}.json").read_text())
               if n != "job2"}
    # no finished job ran again; every unfinished one ran exactly once
    assert not (set(after) & (ok_done - {"job2"}))
    assert sorted(after) == sorted(set(f"job{i}" for i in range(6)) - (ok_done - {"job2"}))
    assert [s for s in status.values()].count("skipped") == len(ok_done - {"job2"})
    failed = json.loads((tmp_path / "state" / "job2.json").read_text())
    assert "planted failure in job2" in failed["error"]
    assert (tmp_path / "out" / "job2.ipynb").is_file(), "the failed notebook is kept for the book"
    # a third run skips everything except the failure, which runs again
    proc = _driver(tmp_path, 6)
    out, _ = proc.communicate(timeout=300)
    status = json.loads(out.strip().splitlines()[-1])
    assert [k for k, v in status.items() if v != "skipped"] == ["job2"]


def test_changed_parameters_rerun(tmp_path):
    from npc_lib.runner import Job, run_jobs
    _trivial_notebook(tmp_path / "ok.ipynb")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    job = Job("a", str(tmp_path / "ok.ipynb"), str(tmp_path / "out" / "a.ipynb"),
              {"log": str(tmp_path / "log.txt"), "name": "a"})
    assert run_jobs([job], "fp", tmp_path / "s", progress=False)[0].status == "ok"
    assert run_jobs([job], "fp", tmp_path / "s", progress=False)[0].status == "skipped"
    assert run_jobs([job], "fp-changed-input", tmp_path / "s", progress=False)[0].status == "ok"
    job.parameters["name"] = "b"
    assert run_jobs([job], "fp-changed-input", tmp_path / "s", progress=False)[0].status == "ok"
    assert (tmp_path / "log.txt").read_text().split() == ["a", "a", "b"]


def test_plan_orders_readers_after_writers_and_titles_each_grid_page(tmp_path):
    from npc_lib.config import load_profile
    from npc_lib.runner import plan
    jobs = plan(load_profile("smoke"), tmp_path / "runs", tmp_path / "cohort", ROOT / "notebooks")
    phase = {j.name: j.phase for j in jobs}
    train = [j for j in jobs if j.name.startswith("03_train__")]
    assert len(train) == 40 and max(j.phase for j in train) < phase["04_evaluate"]
    assert phase["04_evaluate"] == phase["05_gradcam"] < phase["06_explore"], "06 reads the maps 05 writes"
    assert phase["04_evaluate"] < phase["07_beyond"], "07 reads the out-of-fold scores 04 writes"
    assert len({j.title for j in train}) == 40
    titled = next(j for j in train if j.parameters["backbone"] == "resnet50")
    assert "ResNet50" in titled.title and titled.parameters["dataset"] in titled.title
    # paths outside the working directory stay absolute, never ../../..
    assert not jobs[0].parameters["runs_dir"].startswith("..")


def test_executed_grid_notebook_carries_its_own_title(tmp_path):
    from npc_lib.runner import Job, run_jobs
    _trivial_notebook(tmp_path / "ok.ipynb")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    job = Job("a", str(tmp_path / "ok.ipynb"), str(tmp_path / "out" / "a.ipynb"),
              {"log": str(tmp_path / "log.txt"), "name": "a"}, title="Train NPC, intratumour, Xception")
    assert run_jobs([job], "fp", tmp_path / "s", progress=False)[0].status == "ok"
    nb = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4)
    assert nb.cells[0].source.splitlines()[0] == "# Train NPC, intratumour, Xception"
    assert nbformat.read(tmp_path / "ok.ipynb", as_version=4).cells[0].source == "# t", "the source is untouched"
    job.title = "another"
    assert run_jobs([job], "fp", tmp_path / "s", progress=False)[0].status == "ok", "a new title reruns"


PID_DRIVER = """
import sys
from pathlib import Path
from npc_lib.runner import Job, run_jobs
root = Path(sys.argv[1])
jobs = [Job(f"job{i}", str(root / "slow.ipynb"), str(root / "out" / f"job{i}.ipynb"), {"name": f"job{i}",
            "log": str(root / "pids")}, cwd=str(root)) for i in range(2)]
run_jobs(jobs, "fp1", root / "state", n_jobs=int(sys.argv[2]), timeout=300, progress=False)
"""


@pytest.mark.parametrize("n_jobs", [1, 2], ids=["in_process", "local_cluster"])
def test_no_kernel_outlives_the_runner_on_sigterm(tmp_path, n_jobs):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('log = ""\nname = ""')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("import os, time\nwith open(log, 'a') as f:\n    f.write(f'{os.getpid()}\\n')\n"
                                             "time.sleep(300)")]
    nbformat.write(nb, tmp_path / "slow.ipynb")
    proc = subprocess.Popen([sys.executable, "-c", PID_DRIVER, str(tmp_path), str(n_jobs)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    pids_file = tmp_path / "pids"
    deadline = time.time() + 180
    while time.time() < deadline and len(pids_file.read_text().split() if pids_file.exists() else []) < n_jobs:
        time.sleep(0.3)
    kernels = [int(x) for x in pids_file.read_text().split()]
    assert len(kernels) == n_jobs
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]

    deadline = time.time() + 20
    while time.time() < deadline and any(alive(k) for k in kernels):
        time.sleep(0.5)
    left = [k for k in kernels if alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"kernels {left} outlived the runner"
