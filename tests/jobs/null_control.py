"""The negative control at a size that can hold its bounds (``tests/test_negative_control.py`` explains it), run
into the folder given as the only argument: the scored table is pickled as ``table.pkl`` beside the run's own
files. The test session starts it in the background (``tests/conftest.py``)."""
from __future__ import annotations

import sys
from pathlib import Path

from npc_lib.config import load_profile
from npc_lib.data.prepared import prepare
from npc_lib.stages.negative_control import run_negative_control
from npc_lib.synth import ensure_cohort

OVERRIDES = {"cohort.patients": 1500, "cohort.matrix": 48, "cohort.slices": 4, "cohort.seed": 2024,
             "split.test_fraction": 0.5, "weights": "none", "negative_control": {"backbones": ["efficientnet-b0"]}}


def main(folder: Path) -> None:
    profile = load_profile("smoke", OVERRIDES)
    cohort = ensure_cohort(profile, None, folder, progress=False)
    prep = prepare(profile, cohort, folder, progress=False)
    run_negative_control(profile, folder, prep, progress=False).to_pickle(folder / "table.pkl")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
