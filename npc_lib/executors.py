"""Where the runner's notebook jobs run: in this process, or on a Dask cluster.

* ``jobs=1``: one after the other in this process.
* ``jobs=N``: a ``dask.distributed.LocalCluster`` of N single-threaded worker processes.
* ``scheduler=ADDRESS``: an existing Dask cluster (``dask scheduler`` + ``dask worker`` on each
  machine; one GPU per worker for finetune). Workers and the runner must see the project folder
  and the runs folder at the same paths (a shared file system): every job checks this first and
  fails with a clear message instead of hanging.

A job whose worker dies is run once more on another worker (the LocalCluster's scheduler allows
one failure; for an external scheduler set ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1``
where it starts); if it dies again the job is recorded as failed and the others go on.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from npc_lib.errors import NpcError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30
# Dask's nannies export this glibc setting to their workers (and into the runner's own
# environment); it disables malloc's adaptive mmap threshold, so every large temporary NumPy
# array becomes an mmap/munmap pair: measured on the demo, the cohort generator and the
# notebook kernels spent half their CPU time in the kernel. Our jobs are NumPy/TensorFlow
# processes, so neither the local workers nor the kernels they start get it.
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"


@dataclass
class ExecutorInfo:
    """What ran the jobs (recorded in ``run_summary.json``)."""

    kind: str            # "local" (this process or a LocalCluster) | "dask" (an external scheduler)
    address: str | None
    workers: int

    def as_dict(self) -> dict:
        return asdict(self)


class Executor:
    """Runs ``fn(item)`` for many items and yields ``(item, result, error)`` as they finish."""

    def __init__(self, jobs: int = 1, scheduler: str | None = None):
        self.jobs, self.scheduler = max(1, int(jobs)), scheduler
        self.client = self.cluster = None
        self.info = ExecutorInfo("local", None, 1)

    def __enter__(self) -> "Executor":
        if self.scheduler or self.jobs > 1:
            import dask
            from distributed import Client, LocalCluster
            # Dask's connection and nanny chatter is not for the console (the CLI logs at INFO)
            logging.getLogger("distributed").setLevel(logging.WARNING)
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
                with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                                      f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None}):
                    self.cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                                                dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
                kind = "local"
            workers = len(self.client.scheduler_info()["workers"])
            self.info = ExecutorInfo(kind, self.client.scheduler.address, workers)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

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
                name = type(exc).__name__
                why = ("the worker running it died (the job was retried once)" if name == "KilledWorker"
                       else f"{name}: {exc}")
                log.error("job failed on the cluster: %s", why)
                yield item, None, why
