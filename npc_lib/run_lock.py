"""One process per run folder: a lock file naming its holder.

``npc-study run``, ``train``, ``datasets`` and ``evaluate`` hold the lock of the run folder they
write (``RunLayout.lock``) for as long as they run. A second command on the same folder stops at
once, naming the holder's PID, host and start time. A lock whose holder died on this host (its PID
is gone) is taken over with a note; one from another host is never guessed dead. Dask workers and
notebook kernels work for the holder and take no lock.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from npc_lib.atomic import remove_leftovers
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def run_lock(runs_dir: RunLayout | str | Path | None) -> Iterator[None]:
    """Hold the run folder's lock inside the block (no-op for ``None``)."""
    if runs_dir is None:
        yield
        return
    path = RunLayout.of(runs_dir).lock
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            pid, host = holder.get("pid"), holder.get("host")
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                log.warning("note: taking over the lock of %s left by process %s on %s (started %s), which is gone",
                            path.parent, pid, host, holder.get("started", "?"))
                path.unlink(missing_ok=True)
                continue
            raise NpcError(f"run folder {path.parent} is in use by process {pid} on {host} (since "
                           f"{holder.get('started', '?')})",
                           hint=f"wait for it to finish, or use another --runs folder; if that process is gone, "
                                f"delete {path}") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        gone = remove_leftovers(path.parent)  # the folder is ours now: what killed writers left goes
        if gone:
            log.warning("note: removed %d partial file(s) or folder(s) left by an interrupted run in %s (%s%s)",
                        len(gone), path.parent, ", ".join(p.name for p in gone[:3]), ", ..." if len(gone) > 3 else "")
        break
    else:
        raise NpcError(f"could not take the lock of run folder {path.parent} (another process took it first)")
    try:
        yield
    finally:
        if _read(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
