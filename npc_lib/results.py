"""The objects a stage hands to its notebook: pickled in the run folder (``RunLayout.result``), so the notebook
reads them instead of computing them again.

A notebook opened on its own (JupyterLab, a run without the stage's file) computes the object itself.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

from npc_lib.atomic import atomic_path


def save_result(path: str | Path, obj) -> Path:
    """Pickle ``obj`` to ``path`` (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".pkl") as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_result(path: str | Path, compute: Callable | None = None):
    """The object a stage saved at ``path``; when there is none, ``compute()`` (None without it)."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f)
    return compute() if compute is not None else None
