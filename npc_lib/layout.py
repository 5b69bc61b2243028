"""Where things are: the project root and the runs under it.

Notebooks resolve every relative path against the project root — the folder holding
``_config.yml`` and ``notebooks/`` — whatever the kernel's working directory (JupyterLab starts
kernels in ``notebooks/``, papermill in the project root), so nothing is ever written under
``notebooks/``.
"""
from __future__ import annotations

import json
from pathlib import Path

RUNS = "runs"
RUN_SUMMARY = "run_summary.json"


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) that holds
    ``_config.yml`` and ``notebooks/``; ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def resolve(path: str | Path, root: Path) -> Path:
    """``path`` as given when absolute, else under ``root``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def finished_runs(root: Path) -> list[tuple[float, str, Path]]:
    """(finish time, profile, runs folder) of every run under ``root/runs`` whose main job
    finished without failed notebooks, newest first."""
    out = []
    for summary in (root / RUNS).glob(f"*/{RUN_SUMMARY}"):
        try:
            s = json.loads(summary.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not s.get("failed") and s.get("profile"):
            out.append((summary.stat().st_mtime, s["profile"], summary.parent))
    return sorted(out, key=lambda r: r[0], reverse=True)


def default_run(root: Path) -> tuple[str, Path, str]:
    """The profile and runs folder a notebook opens on when its parameters leave them empty:
    the newest finished run, else the smoke profile. Returns ``(profile, runs_dir, message)``."""
    runs = finished_runs(root)
    if runs:
        _, profile, folder = runs[0]
        return profile, folder, f"Opened on the newest finished run: {folder.relative_to(root)} ({profile} profile)."
    return "smoke", root / RUNS / "smoke", ("No finished run found under runs/: using the smoke profile "
                                            "(its synthetic cohort is generated if missing, a few minutes).")
