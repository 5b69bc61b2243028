"""The graph changes no result: the smoke study's tables from the Dask graph (the smoke book's run) are identical,
character for character, to those of the same stages run again one after the other in one process
(``--jobs 1``); a measured training time (``seconds``) is a measurement of the machine, not a result, and is left
out."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from npc_lib.cli import main

TABLES = ("table2", "metrics", "external", "external_summary", "negative_control", "survival", "resplits",
          "harmonisation", "finetune_ablation")
STAGES = ("evaluation", "clock", "resplits", "external", "negative_control", "harmonisation", "finetune", "pretraining")
TIMINGS = ("seconds",)


def _results(path):
    """The table's text, cell by cell, without its timing columns."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in TIMINGS if c in frame.columns])


# the stages that compute the tables, from the fitted models on: run again, one after the other, from a copy of
# the graph's run (the cohort, image stores, features and models are reused: TensorFlow makes them the same way
# in either order, and the smoke book's tests cover them)
RECOMPUTED = ("oof", "pretraining", "finetune", "negative_control", "harmonisation", "external", "evaluation",
              "resplits", "clock")


@pytest.fixture(scope="module")
def serial_smoke(smoke_book, tmp_path_factory):
    """The smoke profile's table stages, serially, in a copy of the graph's run folder."""
    from npc_lib.layout import RunLayout
    root, graph, _ = smoke_book
    runs = tmp_path_factory.mktemp("serial") / "smoke"
    shutil.copytree(graph, runs, ignore=shutil.ignore_patterns("executed", "pictures", "figures"))
    layout = RunLayout(runs)
    dropped = 0
    for record in layout.stages.glob("*.json"):
        if record.stem.split("__")[0] in RECOMPUTED:
            record.unlink()
            dropped += 1
    assert dropped >= 15, dropped
    args = ["run", "--profile", "smoke", "--runs", str(runs), "--jobs", "1", "--book-root", str(root)]
    for s in STAGES:
        args += ["--stop-after", s]
    assert main(args) == 0
    summary = json.loads(layout.summary.read_text())
    ran = {x["name"].split(":")[0] for x in summary["stages"] if x["status"] == "ran"}
    assert set(STAGES) <= ran <= set(RECOMPUTED), ran  # the table stages ran again, nothing before them
    return runs


@pytest.mark.parametrize("table", TABLES)
def test_the_graph_and_the_serial_order_write_the_same_table(smoke_book, serial_smoke, table):
    _, graph, code = smoke_book
    assert code == 0
    a, b = graph / "evaluation" / f"{table}.csv", serial_smoke / "evaluation" / f"{table}.csv"
    assert a.is_file() and b.is_file(), table
    pd.testing.assert_frame_equal(_results(a), _results(b), obj=f"{table}.csv (graph against serial order)")
