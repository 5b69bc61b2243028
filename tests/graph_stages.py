"""Trivial stages for the graph's own tests: each appends its name to a log, writes a file and sleeps a little;
one fails on purpose; one starts a child process that sleeps (an interrupt must end it)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from npc_lib.stage import Stage


def _log(ctx, name: str) -> None:
    with open(ctx.layout.root / "log.txt", "a") as f:
        f.write(name + "\n")


def write(ctx, name: str, seconds: float = 0.3) -> list:
    """Log, wait, write ``<name>.txt`` (its content: the profile's train.epochs)."""
    _log(ctx, name)
    time.sleep(seconds)
    out = ctx.layout.root / f"{name}.txt"
    out.write_text(f"{name} {ctx.profile.train.epochs}\n")
    return [out]


def fail(ctx, name: str) -> list:
    _log(ctx, name)
    raise ValueError(f"planted failure in {name}")


def _sleep_and_record(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(300)


def child(ctx, name: str) -> list:
    """Start a spawned child that records its pid and sleeps (as a stage's pool would compute)."""
    from npc_lib.children import spawn_pool
    _log(ctx, name)
    with spawn_pool(1) as pool:
        pool.apply(_sleep_and_record, (str(ctx.layout.root / "children.txt"),))
    return []


def graph(kind: str = "plain") -> list[Stage]:
    """a → b → d, a → c (c fails when kind == "failing"), e alone; kind == "child": e starts a child process."""
    return [Stage("a", write, ("a",), reads=("train.epochs",)),
            Stage("b", write, ("b",), needs=("a",)),
            Stage("c", fail if kind == "failing" else write, ("c",), needs=("a",)),
            Stage("d", write, ("d",), needs=("b", "c")),
            Stage("e", child if kind == "child" else write, ("e",))]


def kill_worker_once(ctx, name: str) -> list:
    """Kill the process running this stage the first time (a marker file remembers), then succeed."""
    import signal
    marker = ctx.layout.root / f"{name}.killed"
    if not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)
    return write(ctx, name, 0.1)


def kill_worker(ctx, name: str) -> list:
    """Kill the process running this stage, every time."""
    import signal
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(30)
    return []


def where(ctx, name: str) -> dict:
    """Record which process ran the stage."""
    out = write(ctx, name, 0.5)
    return {"writes": out, "info": {"pid": os.getpid()}}


def trivial_book(root: Path, body: str) -> Path:
    """A project folder whose ``03_train`` notebook runs ``body`` (its parameters: the notebooks' own)."""
    import nbformat
    (root / "notebooks").mkdir(parents=True)
    (root / "runs").mkdir()
    (root / "_config.yml").write_text("title: t\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('profile = ""\nruns_dir = ""\ncohort_dir = ""\noverrides = {}\ndataset = ""')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t\n\ntext"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, root / "notebooks" / "03_train.ipynb")
    return root
