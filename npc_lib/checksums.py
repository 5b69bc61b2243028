"""SHA-256 of files, computed once per process for a file of a given size and modification time.

Every reused output is checked before it is used (image stores, feature caches, a stage's files); a file
read by several steps of one process is hashed once, and a file that was changed since (its size or time
differs) is hashed again.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=100_000)
def _sha256(path: str, size: int, mtime_ns: int, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """The file's SHA-256 (hex)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, chunk)
