"""The smoke study's table stages run again one after the other in one process (``--jobs 1``), in a copy of the
graph's run folder: the reference of ``tests/test_graph_results.py``. The session's background takes the copy as
soon as the smoke run ends (before any test can touch it) and runs the stages later (``tests/conftest.py``)."""
from __future__ import annotations

import shutil
from pathlib import Path

from npc_lib.layout import RunLayout

# the stages that compute the tables, from the fitted models on: run again, one after the other, from a copy of
# the graph's run (the cohort, image stores, features and models are reused: TensorFlow makes them the same way
# in either order, and the smoke book's tests cover them)
RECOMPUTED = ("oof", "pretraining", "finetune", "negative_control", "harmonisation", "external", "evaluation",
              "resplits", "clock")
STAGES = ("evaluation", "clock", "resplits", "external", "negative_control", "harmonisation", "finetune", "pretraining")


def copy_for_serial(graph: Path, runs: Path) -> int:
    """Copy the graph's run to ``runs`` without its notebooks and pictures, and drop the records of the
    recomputed stages; returns how many were dropped."""
    shutil.copytree(graph, runs, ignore=shutil.ignore_patterns("executed", "pictures", "figures"))
    dropped = 0
    for record in RunLayout(runs).stages.glob("*.json"):
        if record.stem.split("__")[0] in RECOMPUTED:
            record.unlink()
            dropped += 1
    return dropped


def argv(runs: Path, root: Path) -> list[str]:
    """The command (after the interpreter) that runs the recomputed stages serially."""
    args = ["-m", "npc_lib", "run", "--profile", "smoke", "--runs", str(runs), "--jobs", "1", "--book-root", str(root)]
    for s in STAGES:
        args += ["--stop-after", s]
    return args
