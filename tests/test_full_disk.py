"""A full disk at three phases (image store, model outputs, notebooks and book): one line naming the
path and the free space, nothing half-written where a finished file is expected, and a rerun resumes."""
from __future__ import annotations

import errno
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from npc_lib import runner
from npc_lib.stages import book as book_build
from npc_lib.cli import main
from npc_lib.errors import WriteFailed



def _enospc(path="") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if path else []))


def _one_error_line(err: str) -> str:
    lines = [ln for ln in re.split(r"[\r\n]", err) if ln.startswith("error:")]  # \r: after a progress bar
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "No space left on device" in lines[0] and "free on its disk" in lines[0], lines[0]
    return lines[0]


def _leftovers(root: Path) -> list[str]:
    """Temp files and partial folders of the atomic writers."""
    return [str(p) for p in root.rglob("*") if p.name.startswith(".") and (".partial" in p.name or
                                                                          p.name.endswith((".tmp", ".csv")))]


def test_full_disk_while_the_image_store_is_written(cohort_copy, tmp_path, capsys, monkeypatch):
    import npc_lib.data.cache as cache
    runs = tmp_path / "runs"
    real_open, calls = open, {"n": 0}

    class FillingFile:  # the memmap files fill the disk on the third patient block
        def __init__(self, f):
            self.f = f

        def write(self, data):
            calls["n"] += 1
            if calls["n"] > 4:
                raise _enospc()
            return self.f.write(data)

        def close(self):
            self.f.close()

    monkeypatch.setattr(cache, "open", lambda p, mode="r", *a, **k: FillingFile(real_open(p, mode, *a, **k)),
                        raising=False)
    argv = ["datasets", str(cohort_copy), "--profile", "smoke", "--runs", str(runs)]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "could not write " in line and "/images-" in line
    assert not list((runs / "cache").glob("images-*")), "no store may stand in for the finished one"
    assert _leftovers(runs) == []
    monkeypatch.undo()
    assert main(argv) == 0  # space freed: the rerun builds the store
    assert len(list((runs / "cache").glob("images-*/manifest.json"))) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_full_disk_while_model_outputs_are_written(smoke_runs, small_cohort, tmp_path, capsys, monkeypatch):
    pytest.importorskip("keras")
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs)
    run = runs / "models" / "npc__intratumour__efficientnet-lite0"
    before = pd.read_parquet(run / "predictions.parquet")
    shutil.rmtree(run)
    real = pd.DataFrame.to_parquet

    def filling(self, path, *a, **k):
        if Path(path).name.startswith(".predictions.parquet"):
            raise _enospc(path)
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", filling)
    argv = ["train", str(small_cohort), "--profile", "smoke", "--runs", str(runs), "--weights", "none",
            "--backbone", "efficientnet-lite0", "--dataset", "NPC", "--variant", "intratumour"]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"could not write {run / 'predictions.parquet'}" in line
    assert not (run / "predictions.parquet").exists() and not (run / "run.json").exists()
    assert _leftovers(runs) == []
    monkeypatch.undo()
    assert main(argv) == 0  # the rerun fits the same head again
    pd.testing.assert_frame_equal(before, pd.read_parquet(run / "predictions.parquet"))


def test_full_disk_while_notebooks_and_the_book_are_written(tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    from graph_stages import trivial_book
    from npc_lib.config import load_profile
    from npc_lib.executors import Executor
    from npc_lib.layout import RunLayout
    from npc_lib.stage import Stage
    from npc_lib.stages import notebooks
    from npc_lib.stages.context import RunContext
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    project = trivial_book(tmp_path / "nb", "print(dataset)")
    ctx = RunContext(load_profile("smoke"), RunLayout(project / "runs"), None, project)
    stages = [Stage(f"notebook:{d}", notebooks.execute, ("03_train", d)) for d in ("NPC", "CMLN")]
    real_finish = notebooks.finish_executed

    def filling(path, title=""):
        if "cmln" in str(path):
            raise _enospc(path)
        real_finish(path, title)

    def run():
        with Executor(1) as ex:
            return runner.run_graph(stages, ctx, ex, progress=False)
    monkeypatch.setattr(notebooks, "finish_executed", filling)
    recs = run()
    executed = ctx.layout.executed_notebook("03_train", "cmln")
    assert recs["notebook:NPC"].status == "ran" and recs["notebook:CMLN"].status == "failed"
    assert f"could not write {executed}" in recs["notebook:CMLN"].error and "free on its disk" in recs["notebook:CMLN"].error
    assert isinstance(recs["notebook:CMLN"].exception, WriteFailed)  # the run ends with this one line
    assert not executed.exists() and _leftovers(project / "runs") == []
    monkeypatch.setattr(notebooks, "finish_executed", real_finish)
    again = run()
    assert [r.status for r in again.values()] == ["reused", "ran"]  # the finished notebook is kept, the other resumes
    assert nbformat.read(executed, as_version=4).cells
    shutil.copytree(project / "runs" / "executed" / "train", tmp_path / "executed")
    out = {}

    # the book's copy of the executed notebooks: the previous copy stays whole
    book = tmp_path / "project"
    old = book / book_build.BOOK_NOTEBOOKS / "01_cohort.ipynb"
    old.parent.mkdir(parents=True)
    old.write_text("previous")
    runs = tmp_path / "runs"
    shutil.copytree(tmp_path / "executed", runs / "executed" / "train")
    real_copy = shutil.copy2
    monkeypatch.setattr(shutil, "copy2", lambda src, dst, **k: (_ for _ in ()).throw(_enospc(dst))
                        if "cmln" in str(src) else real_copy(src, dst, **k))
    with pytest.raises(WriteFailed) as err:
        book_build.build_book(book, runs, out, "smoke")
    assert f"could not write {book / book_build.BOOK_NOTEBOOKS}" in str(err.value)
    assert old.read_text() == "previous" and sorted(p.name for p in old.parent.iterdir()) == ["01_cohort.ipynb"]
