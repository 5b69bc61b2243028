"""Every file a stage reads in a run was written by the stage itself or by a stage it needs, directly or not.

A stage that reads another's output without needing it may run before that output exists (or read a stale one),
and its digest does not move when that output changes, so it would be reused wrongly. The shared runs record what
each stage opens (``tests/audit/sitecustomize.py``: Dask workers, pool children and notebook kernels inherit the
stage's name), and the reads are checked against the plan's graph."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from npc_lib.config import load_profile
from npc_lib.graph import upstream_of
from npc_lib.layout import RunLayout
from npc_lib.stages.context import RunContext
from npc_lib.stages.plan import plan


def reads_beyond_the_graph(profile, runs: Path, project: Path, reads: Path) -> tuple[list, int]:
    """(stage, file, the stage that wrote it) for each read the graph does not order, and how many reads there were."""
    layout = RunLayout(Path(runs).resolve())
    stages = plan(RunContext(load_profile(str(profile)), layout, None, project))
    reach = {s.name: {u.name for u in upstream_of(stages, [s.name])} for s in stages}
    writer = {}
    for rec in layout.stages.glob("*.json"):
        data = json.loads(rec.read_text())
        for name in data.get("files", {}) if isinstance(data, dict) else ():
            writer[name] = data["name"]
    out, n = set(), 0
    for log in reads.glob("*.tsv"):
        for line in log.read_text().splitlines():
            stage, path = line.split("\t")
            rel = Path(path).relative_to(layout.root).as_posix()
            n += 1
            # a file its writer's ancestor read: in a fresh run the reader made it first (a cache by fingerprint
            # that both use), so the graph orders them
            if rel in writer and writer[rel] not in reach.get(stage, {stage}) and stage not in reach[writer[rel]]:
                out.add((stage, rel, writer[rel]))
    return sorted(out), n


def test_each_stage_of_the_mini_run_reads_only_what_its_graph_ancestors_wrote(mini_run):
    bad, n = reads_beyond_the_graph(mini_run.profile, mini_run.layout.root, mini_run.root, mini_run.root / "reads")
    assert n > 50, "the audit saw the stages read their inputs"
    assert not bad, bad


def test_each_stage_of_the_smoke_book_reads_only_what_its_graph_ancestors_wrote(smoke_book):
    root, runs, code = smoke_book
    if code != 0:
        pytest.skip("the smoke run failed (its own test says why)")
    bad, n = reads_beyond_the_graph("smoke", runs, root, root / "reads")
    assert n > 50, "the audit saw the stages read their inputs"
    assert not bad, bad
