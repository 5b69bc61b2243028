"""Where the main job's stages run: in this process, or on a Dask cluster.

* ``jobs=1``: one after the other in this process (the serial order).
* ``jobs=N``: a local Dask cluster of N single-threaded worker processes for the light stages (NumPy, pandas,
  notebook kernels; resource ``light``) and one more for the heavy ones (a TensorFlow backbone; resource
  ``tensorflow``): heavy stages run one at a time, so two of them never meet in memory, and TensorFlow's threads
  use every core while it runs; light stages never queue behind a heavy one.
* ``scheduler=ADDRESS``: an existing Dask cluster (``dask scheduler`` + ``dask worker`` on each machine; one
  GPU per worker). Heavy stages ask for ``tensorflow`` only where some worker declares it
  (``dask worker --resources tensorflow=1``). Workers and the runner must see the project folder and the runs
  folder at the same paths (a shared file system).

A stage whose worker dies is run once more on another worker (the local cluster allows one failure; for an
external scheduler set ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` where it starts); if it dies again it
is recorded as failed and the stages that do not need it go on.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from npc_lib.children import TRIM_VARIABLE
from npc_lib.errors import NpcError

if TYPE_CHECKING:
    from npc_lib.graph import Stage, StageRecord

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30
HEAVY = "tensorflow"  # the worker resource heavy stages ask for
LIGHT = "light"       # ... and the light ones


@dataclass
class ExecutorInfo:
    """What ran the stages (recorded in ``run_summary.json``)."""

    kind: str            # "serial" (this process) | "local" (a local Dask cluster) | "dask" (an external scheduler)
    address: str | None
    workers: int
    heavy_resource: bool = False  # some worker holds the ``tensorflow`` resource
    light_resource: bool = False  # ... and some the ``light`` one

    def as_dict(self) -> dict:
        return asdict(self)


LIGHT_NICENESS = 5  # light stages yield the cores to a running TensorFlow stage (the longer chain)
_niced = False


def execute_light_stage(stage: Stage, ctx, *waited: StageRecord) -> StageRecord:
    """:func:`execute_stage` on a light worker, whose process (and what it starts: notebook kernels, pools) runs
    at a lower CPU priority, so a TensorFlow stage running beside it keeps the cores it can use."""
    global _niced
    if not _niced:
        try:
            os.nice(LIGHT_NICENESS)
        except OSError:  # pragma: no cover - not allowed here: run at the normal priority
            pass
        _niced = True
    from npc_lib.graph import execute_stage
    return execute_stage(stage, ctx, *waited)


def local_cluster(workers: int):
    """A Dask cluster on this machine: ``workers`` single-threaded processes holding the ``light`` resource and one
    holding ``tensorflow``; workers may start child processes (a stage's pool, an isolated stage)."""
    import dask
    from distributed import Nanny, Scheduler, SpecCluster
    # a worker's own log is not for the console: a stage's failure comes back with its future, and while an
    # interrupt closes the scheduler a worker's heartbeat logs a connection error after the run's last line
    options = {"nthreads": 1, "host": "127.0.0.1", "dashboard": False, "dashboard_address": ":0",
               "silence_logs": logging.CRITICAL, "memory_limit": 0}
    specs = {"tensorflow": {"cls": Nanny, "options": {**options, "resources": {HEAVY: 1}}}}
    specs.update({f"light-{i}": {"cls": Nanny, "options": {**options, "resources": {LIGHT: 1}}} for i in range(workers)})
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 0, "dashboard": False,
                                               "dashboard_address": ":0"}}  # its HTTP server on a free port
    with dask.config.set({"distributed.scheduler.allowed-failures": 1, "distributed.worker.daemon": False,
                          f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None}):
        return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.CRITICAL, name="npc-study")


def quiet_resource_tracker() -> None:
    """An interrupt stops the workers mid-stage; the semaphores of a pool a stage had open are then reported by
    multiprocessing's resource tracker (a process of its own, which takes this process's warning options when it
    starts) as "leaked" at exit. They are freed with the workers; the report is noise after the run's own
    "interrupted" line."""
    option = "ignore::UserWarning:multiprocessing.resource_tracker"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)
    # the tracker may already be running, or start from a process that was started before this call (a progress
    # bar's lock starts it at import): the environment reaches it wherever it starts
    present = os.environ.get("PYTHONWARNINGS", "")
    if option not in present.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [present, option]))


class Executor:
    """Runs the graph's stages: serially here, or on a Dask cluster (``client``)."""

    def __init__(self, jobs: int = 1, scheduler: str | None = None):
        self.jobs, self.scheduler = max(1, int(jobs)), scheduler
        self.client = self.cluster = None
        self.info = ExecutorInfo("serial", None, 1)

    def __enter__(self) -> "Executor":
        if self.scheduler or self.jobs > 1:
            from distributed import Client
            # Dask's connection and nanny chatter is not for the console (the CLI logs at INFO)
            for name in ("distributed", "tornado", "asyncio"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            if self.scheduler:
                try:
                    self.client = Client(self.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
                except OSError as exc:
                    raise NpcError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}",
                                   hint="start it with `dask scheduler` and pass its tcp:// address") from None
                try:
                    self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
                except (TimeoutError, OSError):
                    self.client.close()
                    raise NpcError(f"no Dask worker joined the scheduler at {self.scheduler} within "
                                   f"{CONNECT_TIMEOUT_S} s", hint="start workers with `dask worker ADDRESS`") from None
                kind = "dask"
            else:
                quiet_resource_tracker()
                self.cluster = local_cluster(self.jobs)
                self.client = Client(self.cluster)
                kind = "local"
            workers = self.client.scheduler_info()["workers"]
            held = [set((w.get("resources") or {})) for w in workers.values()]
            self.info = ExecutorInfo(kind, self.client.scheduler.address, len(workers), any(HEAVY in r for r in held),
                                     any(LIGHT in r for r in held))
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the cluster quietly (also after an interrupt: its workers and their children end)."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        for thing in (client, cluster):
            if thing is None:
                continue
            try:
                thing.close(timeout=10) if thing is client else thing.close(timeout=20)
            except BaseException:  # noqa: BLE001 - closing after an interrupt: nothing more to say
                pass

    def run(self, fn: Callable, items: list, *args) -> Iterator[tuple[object, object, str]]:
        """Yield ``(item, fn(item, *args), "")`` or ``(item, None, error)`` as each item finishes."""
        if self.client is None:
            for item in items:
                yield item, fn(item, *args), ""
            return
        from distributed import as_completed
        futures = {self.client.submit(fn, item, *args, pure=False, retries=0): item for item in items}
        for fut in as_completed(futures):
            item = futures[fut]
            try:
                yield item, fut.result(), ""
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection...: recorded, the rest go on
                yield item, None, failure_text(exc)


def failure_text(exc: BaseException) -> str:
    """What to record of an exception a cluster raised for a task."""
    name = type(exc).__name__
    return ("the worker running it died (it was retried once)" if name == "KilledWorker" else f"{name}: {exc}")
