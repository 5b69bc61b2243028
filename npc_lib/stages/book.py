"""Stage ``book``: the Jupyter Book of a run.

Reads: every executed notebook (stages ``notebook:*``; a failed one is shown with its error), the chapters in
``book/``, ``_config.yml`` and ``_toc.yml``, and this run's stage timeline.
Writes: ``book/executed/`` (the executed notebooks, the run-status page with its Gantt chart, the stamp) and
``_build/html`` (``jupyter-book build``, execution off); ``book_build.log`` in the run folder.
Serves: the book that mirrors the paper. The runner runs it last, in its own process.
"""
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


def write_status_page(folder: Path, timeline: dict, profile: str) -> None:
    """The book's run-status page (generated, not committed): the machine, the stages as a Gantt chart with
    the critical path named, and a table of every stage (status, start, seconds, CPU seconds, error)."""
    import pandas as pd

    from npc_lib.machine import describe
    from npc_lib.show.plots.base import save
    from npc_lib.show.plots.status import fig_stage_gantt
    stages = pd.DataFrame(timeline.get("stages", []), columns=["name", "status", "started", "seconds", "cpu_seconds",
                                                               "error"]).fillna({"error": ""})
    critical = timeline.get("critical_path", [])
    notebooks = stages[stages["name"].str.startswith("notebook:")]
    failed = stages[stages["status"].isin(["failed", "skipped"])]
    t0 = stages["started"].min() if len(stages) else 0.0
    wall = float((stages["started"] + stages["seconds"]).max() - t0) if len(stages) else 0.0
    lines = [f"# Run status ({profile} profile)", "",
             f"Machine: {describe(timeline.get('machine'))}. The {len(stages)} stages before this book took "
             f"{wall:.0f} s of wall time and {stages['cpu_seconds'].sum():.0f} CPU seconds; "
             f"{int((stages['status'] == 'ran').sum())} ran, {int((stages['status'] == 'reused').sum())} were reused "
             f"(their inputs, settings and code unchanged), {len(failed)} failed or could not run. "
             f"{int(notebooks['status'].isin(['ran', 'reused']).sum())} of {len(notebooks)} notebooks finished.", ""]
    if len(stages):
        save(fig_stage_gantt(stages, critical), folder / "status_stages")
        lines += ["```{figure} status_stages.png", ":alt: A Gantt chart with one bar per stage of the main job, from "
                  "its start to its end, coloured by whether it ran, was reused, failed or was skipped; the bars of "
                  "the critical path are outlined.", ":width: 100%", "",
                  "Where the time went: each stage of the main job from its start to its end.", "```", "",
                  f"Critical path (the chain that set the wall time): {' → '.join(critical) or 'none'}.", ""]
    lines += ["| stage | status | start (s) | seconds | CPU seconds | error |", "|---|---|---|---|---|---|"]
    for r in stages.sort_values("started", kind="stable").itertuples():
        err = str(r.error).replace("|", "\\|").replace("\n", " ")
        status = f"**{r.status}**" if r.status in ("failed", "skipped") else r.status
        lines.append(f"| {r.name} | {status} | {r.started - t0:.0f} | {r.seconds:.1f} | {r.cpu_seconds:.1f} | {err} |")
    write_text(folder / "status.md", "\n".join(lines) + "\n")


def build_book(book_root: Path, runs_dir: Path, timeline: dict, profile: str, stamp: dict | None = None) -> Path:
    """Copy the executed notebooks into the book tree and build it (execution off) to _build/html;
    ``timeline`` (this run's stages) makes the run-status page and ``stamp`` (:func:`run_stamp`) every page's
    footer."""
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
        pictures = RunLayout.of(runs_dir).pictures
        if pictures.is_dir():  # the views' pictures: book/_ext/interactive_views.py puts them in _static
            shutil.copytree(pictures, tmp / "pictures")
        write_status_page(tmp, timeline, profile)
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


def run_stamp(profile, book_root: Path, digests: dict[str, str]) -> dict:
    """What the book's footer says produced it: package version, commit, profile, date and run digest."""
    import time

    from npc_lib import __version__
    from npc_lib.provenance import git_commit, run_digest
    return {"version": __version__, "commit": git_commit(book_root), "profile": profile.name,
            "profile_source": profile.source, "run_date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "run_digest": run_digest(digests)}


def build(ctx) -> list:
    """Build the book from this run's executed notebooks and stage timeline."""
    import json
    timeline = json.loads(ctx.layout.stage_timeline.read_text()) if ctx.layout.stage_timeline.is_file() else {}
    digests = {r["name"]: r.get("digest", "") for r in timeline.get("stages", [])}
    html = build_book(ctx.book_root, ctx.layout, timeline, ctx.profile.name, run_stamp(ctx.profile, ctx.book_root,
                                                                                        digests))
    return [Path(ctx.book_root) / BOOK_NOTEBOOKS, html]


def book_sources(ctx) -> str:
    """The book's own sources (chapters, configuration, extensions): a change to one rebuilds the book."""
    root = Path(ctx.book_root)
    files = [root / "_config.yml", root / "_toc.yml", *sorted(p for p in (root / "book").rglob("*")
                                                              if p.is_file() and "executed" not in p.parts)]
    import hashlib
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def stages(ctx, known: frozenset = frozenset()) -> list:
    from npc_lib.stage import Stage
    return [Stage("book", build, needs=tuple(sorted(k for k in known if k.startswith("notebook:"))), tolerant=True,
                  local=True, extra=book_sources, serves="the book")]
