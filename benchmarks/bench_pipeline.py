"""Benchmark: the main job's stages in the serial order against the graph on the Dask cluster, in one run.

Runs ``npc-study run`` twice from empty run folders on the same profile: ``--jobs 1`` (every stage one after the
other in one process, the graph's order) and ``--jobs 2`` (the graph: two workers for the light stages and one for
TensorFlow). Prints each stage's seconds and CPU seconds in both, the wall time of each run and their ratio, the
critical path of the graph, the largest process's memory (of each run and its children), the machine, and whether
the tables of the two runs are identical byte for byte. ``--rerun`` then times the graph run again with nothing
changed (every stage reused). Usage::

  python benchmarks/bench_pipeline.py [--profile smoke] [--out /tmp/bench-pipeline] [--only graph] [--rerun]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("table2", "metrics", "negative_control", "survival", "resplits", "external", "harmonisation",
          "finetune_ablation")


def run(profile: str, runs: Path, jobs: int, book: bool) -> tuple[dict, float, float]:
    """One main job; returns its summary, wall seconds and its processes' largest resident memory (GB)."""
    cmd = [str(Path(sys.executable).with_name("npc-study")), "run", "--profile", profile, "--runs", str(runs),
           "--jobs", str(jobs), "--book-root", str(ROOT), *([] if book else ["--no-book"])]
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    return json.loads((runs / "run_summary.json").read_text()), wall, rss


def main(argv: list[str] | None = None) -> int:
    from npc_lib.machine import describe
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-pipeline"))
    ap.add_argument("--only", choices=("serial", "graph"), help="run one of the two")
    ap.add_argument("--book", action="store_true", help="build the book too (both runs)")
    ap.add_argument("--rerun", action="store_true", help="then rerun the graph with nothing changed")
    a = ap.parse_args(argv)
    print(f"machine: {describe()}; profile {a.profile}")
    results = {}
    for name, jobs in (("serial", 1), ("graph", 2)):
        if a.only and a.only != name:
            continue
        runs = a.out / name
        shutil.rmtree(runs, ignore_errors=True)
        results[name] = run(a.profile, runs, jobs, a.book)
        print(f"{name:6s}: {results[name][1]:7.1f} s wall, {results[name][0]['seconds']['cpu']:7.1f} CPU s in "
              f"stages, largest process so far {results[name][2]:.2f} GB")
    stages = {}
    for name, (summary, _, _) in results.items():
        for s in summary["stages"]:
            stages.setdefault(s["name"], {})[name] = s
    print(f"\n{'stage':42s} " + " ".join(f"{n + ' s':>10s} {n + ' cpu':>10s}" for n in results))
    for stage, by in sorted(stages.items(), key=lambda kv: -max(v["seconds"] for v in kv[1].values())):
        print(f"{stage:42s} " + " ".join(f"{by[n]['seconds']:10.1f} {by[n]['cpu_seconds']:10.1f}" if n in by else
                                         f"{'':>10s} {'':>10s}" for n in results))
    if "graph" in results:
        timeline = json.loads((a.out / "graph" / "stages" / "timeline.json").read_text())
        print(f"\ncritical path of the graph: {' -> '.join(timeline['critical_path'])}")
    if len(results) == 2:
        ratio = results["serial"][1] / results["graph"][1]
        print(f"\nwall time: serial {results['serial'][1]:.1f} s, graph {results['graph'][1]:.1f} s "
              f"(serial / graph = {ratio:.2f})")
        for t in TABLES:
            a_, b_ = (a.out / n / "evaluation" / f"{t}.csv" for n in ("serial", "graph"))
            same = a_.is_file() and b_.is_file() and a_.read_bytes() == b_.read_bytes()
            print(f"  {t}.csv identical in both: {same}" + ("" if a_.is_file() else " (not written)"))
    if a.rerun and "graph" in results:
        _, wall, _ = run(a.profile, a.out / "graph", 2, a.book)
        print(f"\nrerun with nothing changed: {wall:.1f} s wall ({wall / results['graph'][1]:.1%} of the first run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
