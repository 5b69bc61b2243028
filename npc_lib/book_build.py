"""The Jupyter Book of a run: the executed notebooks copied into the book tree, a run-status page,
and ``jupyter-book build`` (execution off)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from npc_lib.atomic import atomic_dir, free_space, write_json, write_text
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout

BOOK_NOTEBOOKS = "book/executed"
STAMP = "stamp.json"  # read by book/_ext/run_stamp.py


def write_status_page(path: Path, outcomes: list, profile: str) -> None:
    """The book's run-status page (generated, not committed)."""
    ok = sum(o.status in ("ok", "skipped") for o in outcomes)
    lines = [f"# Run status ({profile} profile)", "",
             f"{ok} of {len(outcomes)} notebook executions finished; "
             f"{len(outcomes) - ok} failed.", "",
             "| notebook | status | seconds | error |", "|---|---|---|---|"]
    for o in outcomes:
        err = o.error.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {o.name} | {'**failed**' if o.status == 'failed' else o.status} | {o.seconds:.1f} | {err} |")
    write_text(path, "\n".join(lines) + "\n")


def build_book(book_root: Path, runs_dir: Path, outcomes: list, profile: str, stamp: dict | None = None) -> Path:
    """Copy the executed notebooks into the book tree and build it (execution off) to _build/html;
    ``stamp`` (:func:`npc_lib.runner.run_stamp`) becomes every page's footer."""
    book_root = Path(book_root)
    target = book_root / BOOK_NOTEBOOKS
    executed = RunLayout.of(runs_dir).executed
    with atomic_dir(target) as tmp:  # a full disk leaves the previous copy, never half a new one
        (tmp / "train").mkdir(parents=True)
        for nb in executed.rglob("*.ipynb"):
            if not nb.name.startswith("."):
                dest = tmp / nb.relative_to(executed)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(nb, dest)
        write_status_page(tmp / "status.md", outcomes, profile)
        write_json(tmp / STAMP, stamp or {})
    exe = Path(sys.executable).with_name("jupyter-book")
    # --all: chapters glue numbers from the executed notebooks, a dependency Sphinx does not track,
    # so an incremental build would keep the previous run's numbers in unchanged chapters
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_root), "--all", "--quiet"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log_path = RunLayout.of(runs_dir).book_log
    write_text(log_path, res.stdout + "\n" + res.stderr)
    if res.returncode != 0:
        raise NpcError(f"the book build failed (exit {res.returncode}; {free_space(book_root)} free on the book's "
                       f"disk); see {log_path}")
    return book_root / "_build" / "html"
