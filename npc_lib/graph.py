"""The main job as a graph of stages: what each stage needs, a digest of everything it depends on, and reuse
that can be trusted.

A :class:`Stage` names the stages it needs, the profile keys it reads and the library module it runs. Its
digest covers the digests of the stages it needs, the values of those keys, the source of every ``npc_lib``
module its module reaches (followed through the imports, :mod:`npc_lib.provenance`), the package's data
tables and whatever else it declares (a notebook's bytes, a user's cohort files). After a stage ran, its
record (``stages/<name>.json`` in the run folder) keeps that digest and the size and SHA-256 of every file
the stage wrote. A stage is reused only when its digest is the recorded one and every recorded file is still
there, unchanged; otherwise it runs again, and so does every stage downstream of it (their digests cover
its digest). Nothing here knows what a stage does: the stages are :mod:`npc_lib.stages`, the schedule is
:mod:`npc_lib.runner`.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
import logging
import os
import resource
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from npc_lib.atomic import write_json
from npc_lib.checksums import sha256_file
from npc_lib.children import spawn_pool
from npc_lib.layout import RunLayout
from npc_lib.provenance import PACKAGE_ROOT, files_digest, module_closure
from npc_lib.stage import Stage, working_for  # noqa: F401 - the graph's node, re-exported

log = logging.getLogger(__name__)
RAN, REUSED, FAILED, SKIPPED = "ran", "reused", "failed", "skipped"


@dataclass
class StageRecord:
    """What happened to a stage in this run (``run_summary.json`` lists them)."""

    name: str
    status: str                     # ran | reused | failed | skipped
    digest: str = ""
    started: float = 0.0            # seconds since the epoch
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    error: str = ""
    host: str = ""
    max_rss_mb: float = 0.0         # the largest resident memory of the process that ran it (and its children)
    info: dict = field(default_factory=dict)
    exception: BaseException | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """The record as ``run_summary.json`` keeps it."""
        return {"name": self.name, "status": self.status, "started": round(self.started, 3),
                "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2),
                "max_rss_mb": round(self.max_rss_mb, 1), **({"error": self.error} if self.error else {})}

    def timeline(self) -> dict:
        """The record as the status page reads it (with the digest)."""
        return {**self.summary(), "digest": self.digest, "host": self.host}


def profile_value(raw: dict, dotted: str):
    """The value of a dotted key in a profile mapping (None when absent)."""
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@lru_cache(maxsize=256)
def _code_digest(module: str, root: Path, stamp: tuple) -> str:
    files = module_closure({module}, root) | {p for p in root.rglob("*.csv") if p.is_file()}
    return files_digest(files, root)


def code_digest(module: str, root: Path | None = None) -> str:
    """The digest of the library code a module reaches (and the package's data tables); profiles are
    covered by the keys a stage reads, not by their files. ``root``: another copy of the package."""
    root = Path(root or PACKAGE_ROOT)
    files = [*root.rglob("*.py"), *root.rglob("*.csv")]
    stamp = tuple(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    return _code_digest(module, root, stamp)


def stage_digest(stage: Stage, ctx, upstream: dict[str, str], root: Path | None = None) -> str:
    """The digest of a stage: its name and arguments, its inputs' digests, the profile keys it reads, its
    code (``root``: another copy of the package) and its extra inputs."""
    raw = ctx.profile.as_dict()
    h = hashlib.sha256(json.dumps({"stage": stage.name, "args": [str(a) for a in stage.args],
                                   "needs": sorted(upstream.items()),
                                   "reads": {k: profile_value(raw, k) for k in stage.reads}},
                                  sort_keys=True, default=str).encode())
    h.update(code_digest(stage.module, root).encode())
    if stage.extra is not None:
        h.update(str(stage.extra(ctx, *stage.args)).encode())
    return h.hexdigest()[:20]


# -- the record of a stage and its files ------------------------------------------------------------------

def record_path(root: Path, name: str) -> Path:
    """Where a stage's record lives in a run folder."""
    return RunLayout(Path(root)).stage_record(name)


def file_digest(path: Path) -> str:
    """SHA-256 of a file (once per process for a given size and modification time)."""
    return sha256_file(path)


def written_files(paths: Iterable, base: Path) -> dict[str, list]:
    """Every file under ``paths`` (files or folders; hidden names and partial writes left out) as
    ``{path relative to base (or absolute): [size, sha256]}``."""
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for f in files:
            if any(part.startswith(".") or ".partial" in part for part in f.relative_to(p).parts):
                continue
            out[_rel(f, base)] = [f.stat().st_size, file_digest(f)]
    return out


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def intact(files: dict[str, list], base: Path) -> str:
    """Empty when every recorded file is there with its size and SHA-256, else what is not."""
    for rel, (size, digest) in files.items():
        path = Path(rel) if Path(rel).is_absolute() else Path(base) / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != size or file_digest(path) != digest:
            return f"{rel} was changed since the stage wrote it"
    return ""


def read_record(root: Path, name: str) -> dict | None:
    path = record_path(root, name)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# -- running one stage ---------------------------------------------------------------------------------------

def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _max_rss_mb() -> float:
    """The largest resident memory so far of this process and of its children that ended (MB)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return max(me.ru_maxrss, kids.ru_maxrss) / 1024


def _release_memory() -> None:
    """Hand the memory a finished stage freed back to the system (glibc keeps it otherwise: a worker that ran
    many stages would hold the peak of all of them)."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _host() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def _threads_for(stage: Stage):
    """A light stage's NumPy runs on one BLAS thread, wherever it runs (the graph or ``--jobs 1``, so both compute
    alike): beside a TensorFlow stage and the other light worker, more threads than cores only spin and wait.
    A heavy stage keeps every thread."""
    if stage.heavy:
        return nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1, user_api="blas")


def execute_stage(stage: Stage, ctx, *waited: StageRecord) -> StageRecord:
    """Reuse or run one stage, given the records of the stages it waits for (``stage.waits_for`` order: those
    it needs, which enter its digest, then those it only runs after)."""
    root = ctx.layout.root
    upstream = waited[:len(stage.needs)]
    failed = [r.name for r in upstream if r.status in (FAILED, SKIPPED)]
    if failed and not stage.tolerant:
        return StageRecord(stage.name, SKIPPED, error=f"not run: {', '.join(failed)} did not finish")
    started, cpu0, t0 = time.time(), _cpu(), time.perf_counter()
    try:
        digest = stage_digest(stage, ctx, {r.name: r.digest for r in upstream})
        old = read_record(root, stage.name)
        if old and old.get("digest") == digest and old.get("status") == RAN and not failed:
            problem = intact(old.get("files", {}), root)
            if not problem:
                return StageRecord(stage.name, REUSED, digest, started, time.perf_counter() - t0, _cpu() - cpu0,
                                   host=_host(), info=old.get("info", {}))
            log.warning("stage %s: %s; running it again", stage.name, problem)
        record_path(root, stage.name).unlink(missing_ok=True)  # a stage killed while running is never reused
        running = record_path(root, stage.name).with_suffix(".running")
        running.parent.mkdir(parents=True, exist_ok=True)
        running.write_text(json.dumps({"host": _host(), "started": started}))  # what is running now (and where)
        try:
            with _threads_for(stage), working_for(stage.name):
                result = run_isolated(stage, ctx) if stage.isolated else stage.func(ctx, *stage.args)
        finally:
            running.unlink(missing_ok=True)
        writes, info = _split_result(result)
        del result
        _release_memory()
        files = written_files(writes, root)
        rec = StageRecord(stage.name, RAN, digest, started, time.perf_counter() - t0, _cpu() - cpu0, host=_host(),
                          max_rss_mb=_max_rss_mb(), info=info)
        if not failed:  # a tolerant stage that ran without all its inputs is never reused
            write_json(record_path(root, stage.name), {**asdict(rec), "exception": None, "files": files})
        return rec
    except Exception as exc:  # noqa: BLE001 - recorded; the stages that do not need this one go on
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        text = (lines[-1] if lines else type(exc).__name__)[:500]
        log.debug("stage %s failed:\n%s", stage.name, traceback.format_exc())
        return StageRecord(stage.name, FAILED, "", started, time.perf_counter() - t0, _cpu() - cpu0,
                           error=text if lines else type(exc).__name__, host=_host(), exception=_portable(exc))


def _split_result(result) -> tuple[list, dict]:
    if result is None:
        return [], {}
    if isinstance(result, dict):
        return list(result.get("writes", [])), dict(result.get("info", {}))
    return list(result), {}


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling (it travels back from a Dask worker), else a
    RuntimeError with its text."""
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        exc.__traceback__ = None
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# -- isolated stages: a child process that dies with its parent ------------------------------------------------

def run_isolated(stage: Stage, ctx):
    """``stage.func(ctx, *stage.args)`` in a spawned child process; its result (or its exception) comes back."""
    with spawn_pool(1) as pool:
        return pool.apply(stage.func, (ctx, *stage.args))


# -- the graph -----------------------------------------------------------------------------------------------

def check_graph(stages: list[Stage]) -> list[Stage]:
    """The stages in an order where every stage comes after those it needs; refuses an unknown or
    repeated name and a cycle."""
    by_name: dict[str, Stage] = {}
    for s in stages:
        if s.name in by_name:
            raise ValueError(f"stage {s.name} is defined twice")
        by_name[s.name] = s
    for s in stages:
        for n in s.waits_for:
            if n not in by_name:
                raise ValueError(f"stage {s.name} needs {n}, which is not a stage of this run")
    order, state = [], {}

    def visit(name: str, path: tuple) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            raise ValueError(f"the stages form a cycle: {' -> '.join(path + (name,))}")
        state[name] = "open"
        for n in by_name[name].waits_for:
            visit(n, path + (name,))
        state[name] = "done"
        order.append(by_name[name])

    for s in stages:
        visit(s.name, ())
    return order


def upstream_of(stages: list[Stage], names: Iterable[str]) -> list[Stage]:
    """The stages ``names`` and every stage they need, directly or not (graph order kept)."""
    by_name = {s.name: s for s in stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown stage(s): {', '.join(unknown)}; this run's stages: {', '.join(by_name)}")
    keep, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in keep:
            keep.add(n)
            todo += list(by_name[n].needs)
    return [s for s in stages if s.name in keep]


def plan_digests(stages: list[Stage], ctx, root: Path | None = None) -> dict[str, str]:
    """Every stage's digest as a run would compute it now (in graph order; nothing runs): which stages a change
    of code, settings or inputs reaches. ``root``: digest another copy of the package."""
    out: dict[str, str] = {}
    for s in check_graph(stages):
        out[s.name] = stage_digest(s, ctx, {n: out[n] for n in s.needs}, root)
    return out


def critical_path(records: list[dict], stages: list[Stage]) -> list[str]:
    """The chain of stages that set the run's wall time: from the stage that ended last, back through
    the needed stage that ended last, to a stage that needed none that ran."""
    by_name = {r["name"]: r for r in records}
    needs = {s.name: [n for n in s.waits_for if n in by_name] for s in stages}
    if not records:
        return []

    def end(name):
        r = by_name[name]
        return r["started"] + r["seconds"]

    current = max(by_name, key=end)
    path = [current]
    while needs.get(current):
        current = max(needs[current], key=end)
        path.append(current)
    return path[::-1]
