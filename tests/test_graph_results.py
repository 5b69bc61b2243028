"""The graph changes no result: the smoke study's tables from the Dask graph (the smoke book's run) are identical,
byte for byte, to those of the same stages run one after the other in one process (``--jobs 1``)."""
from __future__ import annotations

import pytest

from npc_lib.cli import main

TABLES = ("table2", "metrics", "external", "external_summary", "negative_control", "survival", "resplits",
          "harmonisation", "finetune_ablation")
STAGES = ("evaluation", "clock", "resplits", "external", "negative_control")


@pytest.fixture(scope="module")
def serial_smoke(smoke_book, tmp_path_factory):
    """The smoke profile's table stages, serially, in a fresh run folder."""
    root, _, _ = smoke_book
    runs = tmp_path_factory.mktemp("serial") / "smoke"
    args = ["run", "--profile", "smoke", "--runs", str(runs), "--jobs", "1", "--book-root", str(root)]
    for s in STAGES:
        args += ["--stop-after", s]
    assert main(args) == 0
    return runs


@pytest.mark.parametrize("table", TABLES)
def test_the_graph_and_the_serial_order_write_the_same_table(smoke_book, serial_smoke, table):
    _, graph, code = smoke_book
    assert code == 0
    a, b = graph / "evaluation" / f"{table}.csv", serial_smoke / "evaluation" / f"{table}.csv"
    assert a.is_file() and b.is_file(), table
    assert a.read_bytes() == b.read_bytes(), f"{table}.csv differs between the graph and the serial order"
