"""Child processes that end with the process that started them.

A stage may share its work out to spawned processes (the cohort generator's pool, an isolated TensorFlow
stage). When the runner is interrupted, its Dask workers are stopped; a child they started must not stay
behind, computing for nobody. On Linux each child asks the kernel for SIGKILL when its parent ends
(``PR_SET_PDEATHSIG``); elsewhere this is a no-op.

A daemonic process (a worker that ``dask worker`` started with its default ``distributed.worker.daemon: true``)
may not start children at all: there the pool's work runs in the process itself, one task after another, with
the same results (a logged line says so; set ``distributed.worker.daemon: false`` on the workers to keep the
parallelism and the isolation).
"""
from __future__ import annotations

import ctypes
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

PR_SET_PDEATHSIG = 1
# Dask's nannies export this glibc setting to their workers (and into the runner's own
# environment); it disables malloc's adaptive mmap threshold, so every large temporary NumPy
# array becomes an mmap/munmap pair: measured on the demo, the cohort generator and the
# notebook kernels spent half their CPU time in the kernel. Our stages are NumPy/TensorFlow
# processes, so neither the local workers nor the kernels they start get it.
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
log = logging.getLogger(__name__)


def one_blas_thread() -> None:
    """Called first in a child of a pool of several (its ``initializer``): one BLAS thread, since the pool's
    processes already fill the cores (more threads than cores only spin and wait); then :func:`die_with_parent`."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")
    die_with_parent()


def die_with_parent() -> None:
    """Called first in a child process (a pool's ``initializer``): SIGKILL when its parent ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


@contextmanager
def spawn_pool(processes: int) -> Iterator:
    """A ``multiprocessing`` pool of spawned children that end with this process; leaving the block on an error
    or an interrupt terminates them at once (a child is never waited for)."""
    import multiprocessing as mp
    if mp.current_process().daemon:
        log.warning("%s is a daemonic process, which may not start children: its pool's tasks run in it, one "
                    "after another (distributed.worker.daemon: false on the workers keeps them parallel)",
                    mp.current_process().name)
        yield InProcessPool()
        return
    pool = mp.get_context("spawn").Pool(processes, initializer=one_blas_thread if processes > 1 else die_with_parent)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
        pool.join()


class InProcessPool:
    """The part of ``multiprocessing.Pool`` the stages use, run in this process in order."""

    def apply(self, func, args=(), kwds=None):
        return func(*args, **(kwds or {}))

    def imap(self, func, iterable, chunksize=1):
        return map(func, iterable)

    def starmap(self, func, iterable, chunksize=None):
        return [func(*args) for args in iterable]
