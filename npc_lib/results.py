"""The objects a stage hands to its notebook: pickled in the run folder (``RunLayout.result``), so the notebook
reads them instead of computing them again.

A notebook opened on its own (JupyterLab, a run without the stage's file) computes the object itself; a notebook
the main job runs never does: there the stage's file is missing only if the graph let the notebook start before
its stage, which is an error to report, not to paper over.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable

from npc_lib.atomic import atomic_path
from npc_lib.errors import NpcError
from npc_lib.stage import STAGE_VARIABLE


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
    stage = os.environ.get(STAGE_VARIABLE, "")
    if compute is not None and stage.startswith("notebook:"):
        raise NpcError(f"{path.name} is missing while the main job runs {stage}: the stage that saves it has not "
                       "run (the notebook's stage must need it)")
    return compute() if compute is not None else None
