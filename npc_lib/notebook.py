"""The notebooks' entry point: a notebook's parameters -> its settings, its cohort and its banner.

Relative paths resolve against the project root (the folder holding ``_config.yml``), so a
notebook works wherever its kernel starts; the profile's synthetic cohort is generated here
when no cohort folder is given (the face asks for the default cohort, the library does not).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from npc_lib.config import Profile, load_profile
from npc_lib.data.split import study_split
from npc_lib.layout import RunLayout, default_run, project_root, resolve
from npc_lib.show.report import banner
from npc_lib.synth import ensure_cohort


@dataclass
class NotebookContext:
    """A notebook's derived settings: the profile, its runs folder (and its layout), the cohort
    folder, the figures folder and the data flags (synthetic data, random weights...)."""

    cfg: Profile
    layout: RunLayout
    cohort: Path
    flags: dict

    @property
    def runs(self) -> Path:
        return self.layout.root

    @property
    def figures(self) -> Path:
        return self.layout.figures

    def split(self, clinical: pd.DataFrame) -> pd.Series:
        """The study's patient split: the run's ``split.csv`` (written by the preparation), else made
        now with the profile's seed and test fraction and written there, so that it is made once.

        Parameters
        ----------
        clinical : the cohort's clinical table

        Returns
        -------
        Series patient_id -> train/test
        """
        if self.layout.split.is_file():
            return self.layout.read_split()
        return study_split(clinical, self.cfg.split, self.layout.split)


def open_notebook(profile: str = "", runs_dir: str | Path = "", cohort_dir: str = "",
                  overrides: dict | None = None) -> NotebookContext:
    """A notebook's derived settings from its parameters, and its data banner displayed.

    Relative paths resolve against the project root (the folder holding ``_config.yml``), so a
    notebook works wherever its kernel starts. Empty ``profile`` and ``runs_dir`` open the newest
    finished run (else the smoke profile, whose synthetic cohort is then generated); an empty
    ``cohort_dir`` means the profile's synthetic cohort.

    Parameters
    ----------
    profile : a profile name or .yaml path; empty: the newest finished run's
    runs_dir : the runs folder; empty: the newest finished run's, else ``runs/smoke``
    cohort_dir : a cohort folder; empty: the profile's synthetic cohort
    overrides : dotted profile keys to override

    Returns
    -------
    :class:`NotebookContext`
    """
    root = project_root()
    if not runs_dir:
        chosen, runs, message = default_run(root)
        profile = profile or chosen
        print(message)
    else:
        runs = resolve(runs_dir, root)
        profile = profile or runs.name
    if str(profile).endswith((".yaml", ".yml")):
        profile = str(resolve(profile, root))
    cfg = load_profile(profile, overrides or None)
    runs.mkdir(parents=True, exist_ok=True)
    cohort = ensure_cohort(cfg, resolve(cohort_dir, root) if cohort_dir else None, runs, progress=False)
    return NotebookContext(cfg, RunLayout(runs), Path(cohort), banner(runs, cohort))
