"""SIGKILL in every stage of the main job, one after another: the run (in one process, stages one after the
other) is killed as soon as a stage it has not been killed in starts, again and again, until one attempt
finishes. Arguments: the profile, the run folder, the project folder and the JSON file the outcome goes to
(``killed``: the stages killed, ``attempts``, ``code`` and the end of the finishing attempt's output). The test
session runs it in the background (``tests/conftest.py``); ``tests/test_kill_anywhere.py`` checks the outcome.

The killed run stops after the stages that write the compared tables and one notebook (``--stop-after``): the
other notebooks run the same stage function as that one, and each would cost a start of the command."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from npc_lib.layout import RunLayout

STOP_AFTER = ("notebook:04_evaluate", "resplits", "clock", "gradcam")
MAX_ATTEMPTS = 60


def start(profile: Path, runs: Path, root: Path, jobs: int = 1, stop_after=()) -> subprocess.Popen:
    """``npc-study run`` on ``profile`` in a session of its own (so that a kill reaches every process it starts)."""
    cmd = [str(Path(sys.executable).with_name("npc-study")), "run", "--profile", str(profile), "--runs", str(runs),
           "--no-book", "--jobs", str(jobs), "--book-root", str(root)]
    for name in stop_after:
        cmd += ["--stop-after", name]
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def running(layout: RunLayout) -> set[str]:
    """The stages that have started and not ended (their ``.running`` markers)."""
    return {p.name[: -len(".running")] for p in layout.stages.glob("*.running")} if layout.stages.is_dir() else set()


def _end(proc: subprocess.Popen) -> None:
    """Stopped from outside (an interrupted test session): the run in its own session goes too."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(143)


def kill_everywhere(profile: Path, runs: Path, root: Path) -> dict:
    layout = RunLayout(runs)
    killed: set[str] = set()
    outcome = {"code": None, "output": ""}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        proc = start(profile, layout.root, root, stop_after=STOP_AFTER)
        signal.signal(signal.SIGTERM, lambda *_, p=proc: _end(p))
        while proc.poll() is None:
            fresh = running(layout) - killed
            if fresh:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                killed |= fresh
                break
            time.sleep(0.005)
        else:
            out, err = proc.communicate()
            outcome = {"code": proc.returncode, "output": (out + err)[-3000:]}
            break
    return {"killed": sorted(killed), "attempts": attempt, **outcome}


if __name__ == "__main__":
    profile, runs, root, result = map(Path, sys.argv[1:5])
    result.write_text(json.dumps(kill_everywhere(profile, runs, root), indent=1))
