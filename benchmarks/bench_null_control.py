"""Benchmark: the negative control's false-alarm rate and power at the demo's size, by simulation.

Simulated null studies of the demo's shape (441 patients, 114 with DM, 89 test patients of whom 23 have DM; 4
datasets × 2 variants × 5 backbones, correlated as models of one cell and variants of one dataset are;
:mod:`npc_lib.analysis.null_simulation`) are scored by the control's checks exactly as the main job scores its
null run. Prints the share of clean draws that alarm with its 95 % Clopper–Pearson interval (the checks'
family-wise levels add up to 2 %, a bound, not the rate), and for each planted leak the share of draws it is
caught in and through which check. ``--write`` keeps the measured false-alarm rate in
``npc_lib/resources/null_alarm_rate.csv`` (with the digest of the checks' code, which a test compares), where
the book reads it. Usage::

  python benchmarks/bench_null_control.py [--clean 200] [--leak-seeds 20] [--perm 1000] [--write]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checks_digest() -> str:
    """What the measured rate depends on: the checks' and the simulation's code."""
    from npc_lib.provenance import files_digest, module_closure
    return files_digest(module_closure({"npc_lib.analysis.null_checks", "npc_lib.analysis.null_simulation"}))[:16]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from scipy import stats

    from npc_lib.analysis.null_checks import ALARM_LEVEL
    from npc_lib.analysis.null_simulation import LEAKS, alarmed, simulated_rows
    from npc_lib.machine import describe
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clean", type=int, default=200, help="clean simulated draws")
    ap.add_argument("--leak-seeds", type=int, default=20, help="draws per planted leak")
    ap.add_argument("--perm", type=int, default=1000, help="joint relabellings per draw")
    ap.add_argument("--write", action="store_true", help="keep the measured rate in npc_lib/resources")
    a = ap.parse_args(argv)
    print(f"machine: {describe()}")
    t0 = time.perf_counter()
    alarms = 0
    for seed in range(a.clean):
        hit, _ = alarmed(simulated_rows(seed), n_perm=a.perm, seed=seed)
        alarms += hit
    lo, hi = stats.beta.ppf(0.025, alarms, a.clean - alarms + 1) if alarms else 0.0, \
        stats.beta.ppf(0.975, alarms + 1, a.clean - alarms)
    rate = alarms / a.clean
    per = (time.perf_counter() - t0) / max(a.clean, 1)
    print(f"clean draws: {alarms} of {a.clean} alarmed = {rate:.1%} (95 % CI {lo:.1%} to {hi:.1%}); "
          f"levels: {ALARM_LEVEL:.0%} rows + {ALARM_LEVEL:.0%} family checks; {per:.2f} s per draw")
    for leak in LEAKS:
        caught, through = 0, {}
        for seed in range(1000, 1000 + a.leak_seeds):
            hit, parts = alarmed(simulated_rows(seed, leak), n_perm=a.perm, seed=seed)
            caught += hit
            for p in parts:
                through[p] = through.get(p, 0) + 1
        top = ", ".join(f"{k} {v}" for k, v in sorted(through.items(), key=lambda kv: -kv[1])[:3])
        print(f"power, {leak}: caught in {caught} of {a.leak_seeds} draws ({caught / a.leak_seeds:.0%}); through {top}")
    if a.write:
        path = ROOT / "npc_lib" / "resources" / "null_alarm_rate.csv"
        pd.DataFrame([{"clean_draws": a.clean, "alarms": alarms, "rate": rate, "ci_low": lo, "ci_high": hi,
                       "relabellings": a.perm, "patients": 441, "test_patients": 89, "test_dm": 23, "rows": 40,
                       "checks_digest": checks_digest()}]).to_csv(path, index=False)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
