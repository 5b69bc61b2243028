"""Write files atomically: a temp file in the same folder, then ``os.replace``."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from npc_lib.errors import WriteFailed

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: temp files are created 0600/0700, the results get the usual modes


#: errors of the device or folder written to, not of the data (anything else propagates unchanged)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


def free_space(path: str | os.PathLike) -> str:
    """Free space on the disk holding ``path`` (its nearest existing folder), e.g. ``"12.3 MB"``."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free = shutil.disk_usage(p).free
    except OSError:
        return "unknown"
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1000
    return "unknown"


def write_failure(path: str | os.PathLike, exc: OSError) -> WriteFailed:
    """One line for a failed write: what, where, how much space is left, and what to do."""
    why = exc.strerror or type(exc).__name__
    return WriteFailed(f"could not write {path}: {why} ({free_space(path)} free on its disk); nothing half-written "
                       "was left in its place",
                       hint="free some space (or make the folder writable) and rerun the same command: finished "
                            "steps are kept and the run resumes")


@contextlib.contextmanager
def failed_writes_named(path: str | os.PathLike) -> Iterator[None]:
    """Turn a device error (:data:`WRITE_ERRNOS`) raised inside the block into :class:`WriteFailed`
    naming ``path`` (the file or folder the block produces)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise write_failure(path, exc) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with failed_writes_named(path):
            yield tmp_path
            if tmp_path.exists():
                os.chmod(tmp_path, 0o666 & ~_UMASK)
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, **kwargs) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", **kwargs)


def remove_leftovers(root: str | os.PathLike) -> list[Path]:
    """Delete the temp files and folders that killed writers left under ``root`` (every temp name of
    this module, and papermill's, holds ``.partial``); only safe while no other process writes there."""
    gone = []
    for p in sorted(Path(root).rglob(".*.partial*"), key=lambda q: len(q.parts)):
        if not p.name.startswith(".") or ".partial" not in p.name or not p.exists():
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        gone.append(p)
    return gone


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        with failed_writes_named(path):
            yield tmp
            os.chmod(tmp, 0o777 & ~_UMASK)
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
