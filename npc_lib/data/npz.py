"""Byte-reproducible ``.npz`` writing (fixed zip timestamps), readable by ``numpy.load``."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from npc_lib.atomic import atomic_path


def save_npz(path: str | Path, **arrays) -> None:
    """Like ``np.savez_compressed`` but the same arrays always give the same bytes."""
    with atomic_path(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, buf.getvalue())
