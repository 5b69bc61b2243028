"""Benchmark: the negative control's false-alarm rate and power at the demo's size, by simulation.

Simulated null studies of the demo's shape (441 patients, 114 with DM, 89 test patients of whom 23 have DM; 4
datasets × 2 variants × 5 backbones, correlated as models of one cell and variants of one dataset are;
:mod:`npc_lib.analysis.null_simulation`) are scored by the control's checks exactly as the main job scores its
null run. Prints the share of clean draws that alarm with its 95 % Clopper–Pearson interval (the checks'
family-wise levels add up to 2 %, a bound, not the rate), and for each planted leak the share of draws it is
caught in and through which check. ``--baseline DIR`` scores the same draws with the checks of another checkout
(e.g. an older commit's ``npc_lib/analysis/null_checks.py``) beside these. ``--write`` keeps the measured false-alarm rate in
``npc_lib/resources/null_alarm_rate.csv`` (with the digest of the checks' code, which a test compares), where
the book reads it. Usage::

  python benchmarks/bench_null_control.py [--clean 200] [--leak-seeds 20] [--perm 1000] [--baseline DIR] [--write]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checks_of(checkout: Path):
    """Another checkout's ``check_null`` (loaded as a module of its own; it imports this checkout's helpers)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("baseline_null_checks",
                                                  checkout / "npc_lib" / "analysis" / "null_checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.check_null


def _draw(job: tuple) -> tuple[bool, set[str]]:
    """One simulated study scored (a worker process's task): (checkout or None, seed, leak, relabellings)."""
    from npc_lib.analysis.null_checks import check_null
    from npc_lib.analysis.null_simulation import alarmed, simulated_rows
    checkout, seed, leak, perm = job
    check = check_null if checkout is None else checks_of(Path(checkout))
    return alarmed(simulated_rows(seed, leak), n_perm=perm, seed=seed, check=check)


def tally(checkout: Path | None, clean: int, leak_seeds: int, perm: int, workers: int) -> tuple[int, dict]:
    """Alarms on ``clean`` clean draws, and per leak (caught, {check: draws it fired in}) over ``leak_seeds``;
    ``checkout`` None: this checkout's checks."""
    from multiprocessing import Pool

    from npc_lib.analysis.null_simulation import LEAKS
    jobs = [(checkout, seed, None, perm) for seed in range(clean)]
    jobs += [(checkout, seed, leak, perm) for leak in LEAKS for seed in range(1000, 1000 + leak_seeds)]
    with Pool(workers) as pool:
        results = pool.map(_draw, [(None if checkout is None else str(checkout), *j[1:]) for j in jobs], chunksize=1)
    alarms = sum(hit for (_, _, leak, _), (hit, _) in zip(jobs, results) if leak is None)
    power = {}
    for leak in LEAKS:
        caught, through = 0, {}
        for (_, _, lk, _), (hit, parts) in zip(jobs, results):
            if lk == leak:
                caught += hit
                for part in parts:
                    through[part] = through.get(part, 0) + 1
        power[leak] = (caught, through)
    return alarms, power


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy import stats
    return (stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0,
            stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0)


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from npc_lib.analysis.null_checks import ALARM_LEVEL
    from npc_lib.analysis.null_simulation import ALARM_RATE_FILE, LEAKS, checks_digest
    from npc_lib.machine import describe
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=int, default=200, help="clean simulated draws")
    ap.add_argument("--leak-seeds", type=int, default=20, help="draws per planted leak")
    ap.add_argument("--perm", type=int, default=1000, help="joint relabellings per draw")
    ap.add_argument("--baseline", type=Path, help="another checkout whose checks score the same draws")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes drawing in parallel")
    ap.add_argument("--write", action="store_true", help="keep the measured rate in npc_lib/resources")
    a = ap.parse_args(argv)
    print(f"machine: {describe()}")
    versions = {"this checkout": None}
    if a.baseline:
        versions[f"baseline {a.baseline}"] = a.baseline
    results = {}
    for name, checkout in versions.items():
        t0 = time.perf_counter()
        results[name] = tally(checkout, a.clean, a.leak_seeds, a.perm, a.workers)
        print(f"{name}: {time.perf_counter() - t0:.0f} s for {a.clean} clean and {a.leak_seeds} x "
              f"{len(LEAKS)} leaky draws")
    for name, (alarms, power) in results.items():
        lo, hi = clopper_pearson(alarms, a.clean)
        print(f"\n{name}: clean draws alarmed {alarms} of {a.clean} = {alarms / a.clean:.1%} "
              f"(95 % CI {lo:.1%} to {hi:.1%}); levels {ALARM_LEVEL:.0%} rows + {ALARM_LEVEL:.0%} family checks")
        for leak, (caught, through) in power.items():
            top = ", ".join(f"{k} {v}" for k, v in sorted(through.items(), key=lambda kv: -kv[1])[:3])
            plo, phi = clopper_pearson(caught, a.leak_seeds)
            print(f"  power, {leak}: caught in {caught} of {a.leak_seeds} draws ({caught / a.leak_seeds:.0%}, "
                  f"95 % CI {plo:.0%} to {phi:.0%}); through {top}")
    alarms = results["this checkout"][0]
    rate = alarms / a.clean
    lo, hi = clopper_pearson(alarms, a.clean)
    if a.write:
        path = ROOT / "npc_lib" / "resources" / ALARM_RATE_FILE
        pd.DataFrame([{"clean_draws": a.clean, "alarms": alarms, "rate": rate, "ci_low": lo, "ci_high": hi,
                       "relabellings": a.perm, "patients": 441, "test_patients": 89, "test_dm": 23, "rows": 40,
                       "checks_digest": checks_digest()}]).to_csv(path, index=False)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
