"""The graph changes no result: the smoke study's tables from the Dask graph (the smoke book's run) are identical,
character for character, to those of the same stages run again one after the other in one process
(``--jobs 1``); a measured training time (``seconds``) is a measurement of the machine, not a result, and is left
out."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from jobs.serial_smoke import RECOMPUTED, STAGES
from npc_lib.layout import RunLayout

TABLES = ("table2", "metrics", "external", "external_summary", "negative_control", "survival", "resplits",
          "harmonisation", "finetune_ablation")
TIMINGS = ("seconds",)


def _results(path):
    """The table's text, cell by cell, without its timing columns."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in TIMINGS if c in frame.columns])


@pytest.fixture(scope="module")
def serial_smoke(shared_runs):
    """The smoke profile's table stages, serially, in a copy of the graph's run folder (``jobs/serial_smoke.py``;
    the session's background runs it once the smoke run has ended)."""
    job = shared_runs.wait("serial")
    assert job.code == 0, f"the serial run ended with {job.code}:\n{job.tail()}"
    assert job.info["dropped"] >= 15, job.info  # the copy dropped the records of the recomputed stages
    summary = json.loads(RunLayout(job.runs).summary.read_text())
    ran = {x["name"].split(":")[0] for x in summary["stages"] if x["status"] == "ran"}
    assert set(STAGES) <= ran <= set(RECOMPUTED), ran  # the table stages ran again, nothing before them
    return job.runs


@pytest.mark.parametrize("table", TABLES)
def test_the_graph_and_the_serial_order_write_the_same_table(smoke_book, serial_smoke, table):
    _, graph, code = smoke_book
    assert code == 0
    a, b = graph / "evaluation" / f"{table}.csv", serial_smoke / "evaluation" / f"{table}.csv"
    assert a.is_file() and b.is_file(), table
    pd.testing.assert_frame_equal(_results(a), _results(b), obj=f"{table}.csv (graph against serial order)")
