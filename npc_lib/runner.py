"""The main job: the profile's stages (:mod:`npc_lib.stages`) scheduled as a graph, then the book.

The runner only schedules. Each stage is submitted to the executor with the futures of the stages it needs
(Dask's own task graph): independent stages run at the same time, a stage starts when its inputs are done,
heavy (TensorFlow) stages one at a time on the worker that holds the ``tensorflow`` resource. With ``--jobs 1``
the same stages run one after the other in this process, in the graph's order. Reuse is the stages' own
(:mod:`npc_lib.graph`): a stage whose digest and files are unchanged is not run again. A failing stage is
recorded, the stages that need it are skipped, the others go on; the book is built last, in this process,
and shows what failed. ``run_summary.json`` lists every stage with its status, start, seconds and CPU seconds.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from npc_lib.atomic import write_json
from npc_lib.errors import NpcError, WriteFailed
from npc_lib.executors import HEAVY, LIGHT, Executor, execute_light_stage, failure_text
from npc_lib.graph import (FAILED, RAN, REUSED, SKIPPED, Stage, StageRecord, check_graph, critical_path,
                           execute_stage, read_record, upstream_of)
from npc_lib.layout import RunLayout
from npc_lib.machine import machine
from npc_lib.progress import progress_bar

log = logging.getLogger(__name__)


@contextmanager
def terminate_as_interrupt():
    """While the job runs, SIGTERM unwinds like Ctrl-C: the executor closes its workers (their kernels and child
    processes end with them), so nothing outlives the runner. Only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _announce(rec: StageRecord, bar) -> None:
    bar.update(1)
    if rec.status == RAN:
        log.info("stage %s ran in %.1f s", rec.name, rec.seconds)
    elif rec.status == FAILED:
        log.error("stage %s failed: %s", rec.name, rec.error)


DEFAULT_SECONDS = {True: 60.0, False: 15.0}  # a stage's cost before any run has timed it (heavy, light)


def scheduling_priorities(stages: list[Stage], root: Path) -> dict[str, float]:
    """Each stage's priority for the scheduler: the seconds of the longest chain from it to the end of the run,
    itself included, each stage costed at its last recorded run here (else a default by weight). Among the stages
    ready at once, the worker takes the one that starts the longest remaining chain."""
    cost = {}
    for s in stages:
        old = read_record(root, s.name)
        cost[s.name] = float(old["seconds"]) if old and old.get("status") == RAN else DEFAULT_SECONDS[s.heavy]
    after: dict[str, list[str]] = {s.name: [] for s in stages}
    for s in stages:
        for n in s.waits_for:
            if n in after:
                after[n].append(s.name)
    chain: dict[str, float] = {}
    for s in reversed(check_graph(stages)):
        chain[s.name] = cost[s.name] + max((chain[n] for n in after[s.name]), default=0.0)
    return chain


def run_serial(stages: list[Stage], ctx, bar) -> dict[str, StageRecord]:
    """Every stage in the graph's order, in this process."""
    records: dict[str, StageRecord] = {}
    for s in stages:
        records[s.name] = execute_stage(s, ctx, *[records[n] for n in s.waits_for if n in records])
        _announce(records[s.name], bar)
    return records


def run_on_cluster(stages: list[Stage], ctx, ex: Executor, bar) -> dict[str, StageRecord]:
    """Every stage submitted to the Dask cluster with the futures of the stages it needs."""
    from distributed import as_completed
    token = uuid.uuid4().hex[:8]
    futures, names = {}, {}
    priority = scheduling_priorities(stages, ctx.layout.root)
    for s in stages:
        light = not s.heavy and ex.info.light_resource and ex.info.heavy_resource
        resources = {HEAVY: 1} if s.heavy and ex.info.heavy_resource else {LIGHT: 1} if light else None
        futures[s.name] = ex.client.submit(execute_light_stage if light else execute_stage, s, ctx,
                                           *[futures[n] for n in s.waits_for if n in futures], pure=False,
                                           key=f"stage-{s.name}-{token}", resources=resources, retries=0,
                                           priority=round(priority[s.name]))
        names[futures[s.name].key] = s
    records: dict[str, StageRecord] = {}
    for fut in as_completed(list(futures.values())):
        s = names[fut.key]
        try:
            rec = fut.result()
        except Exception as exc:  # noqa: BLE001 - the worker died twice, or a needed stage's did
            lost = [n for n in s.needs if records.get(n) is not None and records[n].status in (FAILED, SKIPPED)]
            rec = StageRecord(s.name, SKIPPED if lost else FAILED,
                              error=f"not run: {', '.join(lost)} did not finish" if lost else failure_text(exc))
        records[s.name] = rec
        _announce(rec, bar)
    return records


def run_graph(stages: list[Stage], ctx, ex: Executor, progress: bool = True) -> dict[str, StageRecord]:
    """Run ``stages`` (in graph order) on ``ex``; returns every stage's record."""
    bar = progress_bar(total=len(stages), desc="stages", unit="stage", enabled=progress)
    try:
        return run_on_cluster(stages, ctx, ex, bar) if ex.client is not None else run_serial(stages, ctx, bar)
    finally:
        bar.close()


def write_timeline(layout: RunLayout, stages: list[Stage], records: dict[str, StageRecord], info: dict) -> dict:
    """This run's stages as they ran, with the critical path and the machine (the status page reads it)."""
    rows = [records[s.name].timeline() for s in stages if s.name in records]
    ran = [r for r in rows if r["status"] in (RAN, REUSED)]
    timeline = {"stages": rows, "critical_path": critical_path(ran, stages), "machine": machine(), "executor": info}
    write_json(layout.stage_timeline, timeline)
    return timeline


def run_profile(profile, runs_dir: Path, cohort_dir: str | Path | None = None, n_jobs: int = 2,
                book_root: Path = Path("."), timeout: int = 3600, build: bool = True, progress: bool = True,
                scheduler: str | None = None, stop_after: list[str] | None = None) -> dict:
    """The main job: every stage of the profile, then the book; returns the run summary (also written to
    ``run_summary.json``). ``stop_after`` runs only the named stages and those they need (no book)."""
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.plan import plan, preflight
    t0 = time.perf_counter()
    book_root = Path(book_root).resolve()
    if not (book_root / "_config.yml").is_file() or not (book_root / "notebooks").is_dir():
        raise NpcError(f"{book_root} is not the project folder (no _config.yml or notebooks/)",
                       hint="run from the repository root or pass --book-root")
    layout = RunLayout(RunLayout.of(runs_dir).root.resolve())  # absolute: Dask workers may start elsewhere
    layout.root.mkdir(parents=True, exist_ok=True)
    # papermill's kernel must be this interpreter (its "python3" kernel runs `python` from PATH)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    ctx = RunContext(profile, layout, Path(cohort_dir).resolve() if cohort_dir else None, book_root, progress,
                     timeout)
    preflight(ctx)  # an offline machine that refuses random weights stops here, in seconds
    stages = plan(ctx)
    if stop_after:
        stages = upstream_of(stages, stop_after)
    elif not build:
        stages = [s for s in stages if s.name != "book"]
    remote, local = [s for s in stages if not s.local], [s for s in stages if s.local]
    with terminate_as_interrupt():
        with Executor(n_jobs, scheduler) as ex:
            info = ex.info.as_dict()
            records = run_graph(remote, ctx, ex, progress)
        write_timeline(layout, remote, records, info)
        for s in local:
            records[s.name] = execute_stage(s, ctx, *[records[n] for n in s.waits_for if n in records])
            _announce(records[s.name], progress_bar(total=1, enabled=False))
    summary = run_summary(profile, layout, stages, records, info, time.perf_counter() - t0, book_root)
    write_json(layout.summary, summary)
    _raise_input_errors(stages, records)
    return summary


def null_alarm_of_run(layout: RunLayout, records: dict) -> list[str]:
    """The negative control's alarms, where this run has a control that finished (a table lying in the folder
    from another run says nothing)."""
    from npc_lib.stages.negative_control import negative_control_alarms
    rec = records.get("negative_control")
    return negative_control_alarms(layout) if rec is not None and rec.status in (RAN, REUSED) else []


def run_summary(profile, layout: RunLayout, stages: list[Stage], records: dict, info: dict, seconds: float,
                book_root: Path) -> dict:
    """What ``run_summary.json`` says of a run."""
    from npc_lib.stages.book import BOOK_NOTEBOOKS, STAMP
    notebooks = [records[s.name] for s in stages if s.name.startswith("notebook:")]
    failed = [r for s in stages if (r := records[s.name]).status in (FAILED, SKIPPED)]
    book = records.get("book")
    stamp_path = book_root / BOOK_NOTEBOOKS / STAMP
    return {"profile": profile.name, "runs_dir": str(layout.root),
            "book": str(book_root / "_build" / "html") if book is not None and book.status in (RAN, REUSED) else None,
            "stamp": json.loads(stamp_path.read_text()) if book is not None and stamp_path.is_file() else None,
            "executed": sum(r.status == RAN for r in notebooks), "skipped": sum(r.status == REUSED for r in notebooks),
            "failed": [{"name": r.name, "error": r.error} for r in failed],
            "executor": info, "machine": machine(),
            "stages": [records[s.name].summary() for s in stages],
            "seconds": {"total": round(seconds, 1),
                        "cpu": round(sum(records[s.name].cpu_seconds for s in stages), 1)},
            "null_alarm": null_alarm_of_run(layout, records)}


def _raise_input_errors(stages: list[Stage], records: dict) -> None:
    """A stage other than a notebook that failed on its input (a clear error of ours), or any stage that could not
    write (a full disk), ends the command with that error, naming the stage; the stages that did not need it have
    finished and are kept. A notebook whose cell failed is reported in the summary and the book instead."""
    for s in stages:
        r = records[s.name]
        if r.status == FAILED and isinstance(r.exception, NpcError) and (
                not s.name.startswith("notebook:") or isinstance(r.exception, WriteFailed)):
            exc = r.exception
            raise type(exc)(f"stage {s.name}: {exc}", hint=exc.hint) if _plain(exc) else exc


def _plain(exc: NpcError) -> bool:
    try:
        type(exc)("x", hint=None)
        return True
    except TypeError:
        return False
