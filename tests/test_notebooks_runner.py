"""Notebook structure, and the papermill runner's resume and failure isolation (tiny notebooks)."""
from __future__ import annotations

import os
import re
import sys
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


def test_the_plan_has_one_training_page_per_dataset_and_orders_readers_after_writers(tmp_path):
    """Training pages: one per dataset (10 models each on smoke), titled; every notebook needs the stages whose
    outputs it presents, so it starts after them."""
    from npc_lib.config import load_profile
    from npc_lib.graph import upstream_of
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.notebooks import title
    from npc_lib.stages.plan import plan
    ctx = RunContext(load_profile("smoke"), RunLayout(tmp_path / "runs"), None, ROOT)
    stages = plan(ctx)
    names = [s.name for s in stages]
    train = [n for n in names if n.startswith("notebook:03_train")]
    assert len(train) == 4 and {n.rsplit(":", 1)[1] for n in train} == set(ctx.profile.datasets)
    assert len({title(n.rsplit(":", 1)[1]) for n in train}) == 4
    before = {n: {s.name for s in upstream_of(stages, [n])} for n in names if n.startswith("notebook:")}
    assert {f"models:{b}" for b in ctx.profile.backbones} <= before["notebook:03_train:CMLN"]
    assert "evaluation" in before["notebook:04_evaluate"] and "gradcam" in before["notebook:06_explore"]
    assert {"resplits", "clock"} <= before["notebook:07_beyond"] and "external" in before["notebook:08_travel"]
    assert names[-1] == "book" and set(train) <= {s.name for s in upstream_of(stages, ["book"])}


def _trivial_book(root: Path, fail: bool = False) -> Path:
    """A project folder whose 03_train notebook is trivial (logs its dataset, optionally fails)."""
    (root / "notebooks").mkdir(parents=True)
    (root / "runs").mkdir()
    (root / "_config.yml").write_text("title: t\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('profile = ""\nruns_dir = ""\ncohort_dir = ""\noverrides = {}\ndataset = ""')
    p.metadata["tags"] = ["parameters"]
    body = "print(dataset)" + ("\nraise ValueError('planted failure in ' + dataset)" if fail else "")
    nb.cells = [nbformat.v4.new_markdown_cell("# t\n\ntext"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, root / "notebooks" / "03_train.ipynb")
    return root


def test_an_executed_notebook_carries_its_page_title_and_a_failure_is_kept_for_the_book(tmp_path):
    from npc_lib.config import load_profile
    from npc_lib.layout import RunLayout
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.notebooks import NotebookFailed, execute
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    root = _trivial_book(tmp_path / "ok")
    ctx = RunContext(load_profile("smoke"), RunLayout(root / "runs"), None, root)
    [out] = execute(ctx, "03_train", "Max tumour")
    nb = nbformat.read(out, as_version=4)
    from npc_lib.vocabulary import dataset_title
    assert nb.cells[0].source.splitlines()[0] == f"# Train on {dataset_title('Max tumour')}"
    assert "Max tumour" in nb.cells[-1].outputs[0]["text"]
    assert nbformat.read(root / "notebooks" / "03_train.ipynb", as_version=4).cells[0].source.startswith("# t")
    bad = _trivial_book(tmp_path / "bad", fail=True)
    ctx = RunContext(load_profile("smoke"), RunLayout(bad / "runs"), None, bad)
    with pytest.raises(NotebookFailed, match="planted failure in NPC"):
        execute(ctx, "03_train", "NPC")
    kept = nbformat.read(ctx.layout.executed_notebook("03_train", "npc"), as_version=4)
    assert any("planted failure" in str(o) for c in kept.cells if c.cell_type == "code" for o in c.get("outputs", []))
