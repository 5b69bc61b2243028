"""Benchmark: the study's head fits, stacked in NumPy vs one at a time in Keras.

On a finished or prepared study (its image store and feature cache, e.g. ``runs/demo`` after
``make demo``), for each backbone the 8 (dataset × variant) heads of the grid are fitted three
ways on the same standardised features with the profile's settings:
  keras 1-by-1   the previous way: one Keras head and one compiled epoch function per run
  keras seed+1   the same with the next seed: how much AUCs move with the seed alone
  numpy 1-by-1   :func:`npc_lib.learn.stacked_heads.fit_heads` called once per head
  numpy stacked  one :func:`fit_heads` call for all 8 heads (what the study runs)
and prints wall time per way, the ratio against Keras in the same run, and the test AUC (image
level) per head per way with the largest difference (the ways draw different random numbers for
initialisation, order and dropout, so AUCs agree within noise, not bit for bit). Usage:
  python benchmarks/bench_head_grid.py RUNS [--profile demo] [--backbones efficientnet-lite0 ...]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import keras
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from npc_lib.config import load_profile
    from npc_lib.learn.features import extract_features
    from npc_lib.learn.headfit import fit_head
    from npc_lib.learn.models import build_head
    from npc_lib.learn.runtime import seeded_build
    from npc_lib.learn.stacked_heads import HeadTask, fit_heads
    from npc_lib.learn.study import open_prepared
    from npc_lib.learn.train import head_data

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--backbones", nargs="+")
    a = ap.parse_args()
    profile = load_profile(a.profile)
    tr = profile.train
    settings = dict(epochs=int(tr.epochs), batch_size=int(tr.batch_size),
                    learning_rate=float(tr.learning_rate), dropout=float(tr.dropout), l2=float(tr.l2))
    prep = open_prepared(a.runs)
    rows, totals = [], {"keras 1-by-1": 0.0, "keras seed+1": 0.0, "numpy 1-by-1": 0.0, "numpy stacked": 0.0}
    for name in a.backbones or profile.backbones:
        feats = extract_features(prep.store, name, profile, prep.layout.cache)
        data = [(d, v, head_data(prep.store, feats[v], d, v, prep.split))
                for v in profile.variants for d in profile.datasets]
        tasks = [HeadTask(h.X[h.is_train], h.y[h.is_train], int(tr.seed), h.X[~h.is_train], h.y[~h.is_train])
                 for _, _, h in data]
        probs, times = {}, {}
        for way, seed in (("keras 1-by-1", int(tr.seed)), ("keras seed+1", int(tr.seed) + 1)):
            t0 = time.perf_counter()
            out = []
            for _, _, h in data:
                with seeded_build(seed):
                    head = build_head(h.X.shape[1], tr.dropout, tr.l2)
                fit_head(head, keras.optimizers.Adam(tr.learning_rate), h.X[h.is_train], h.y[h.is_train],
                         h.X[~h.is_train], h.y[~h.is_train], epochs=settings["epochs"],
                         batch_size=settings["batch_size"], seed=seed)
                out.append(np.asarray(head(h.X[~h.is_train], training=False)).ravel())
            times[way], probs[way] = time.perf_counter() - t0, out
            keras.backend.clear_session()
        t0 = time.perf_counter()
        fits = [fit_heads([t], **settings)[0] for t in tasks]
        times["numpy 1-by-1"] = time.perf_counter() - t0
        probs["numpy 1-by-1"] = [f.probabilities(h.X[~h.is_train]) for f, (_, _, h) in zip(fits, data)]
        t0 = time.perf_counter()
        fits = fit_heads(tasks, **settings)
        times["numpy stacked"] = time.perf_counter() - t0
        probs["numpy stacked"] = [f.probabilities(h.X[~h.is_train]) for f, (_, _, h) in zip(fits, data)]
        for way, t in times.items():
            totals[way] += t
        for i, (d, v, h) in enumerate(data):
            yt = h.y[~h.is_train]
            rows.append({"backbone": name, "dataset": d, "variant": v, "train_images": int(h.is_train.sum()),
                         **{f"auc {w}": roc_auc_score(yt, probs[w][i]) for w in probs}})
        print(f"{name:20s} 8 heads: " + ", ".join(f"{w} {t:6.2f} s" for w, t in times.items()) +
              f" -> stacked {times['keras 1-by-1'] / times['numpy stacked']:.1f}x faster than keras 1-by-1",
              flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    for other in ("numpy stacked", "keras seed+1"):  # the second line is the seed-to-seed noise of Keras itself
        diff = (table[f"auc {other}"] - table["auc keras 1-by-1"]).abs()
        cell = table.groupby(["dataset", "variant"])[[f"auc {other}", "auc keras 1-by-1"]].mean()
        cell_diff = (cell[f"auc {other}"] - cell["auc keras 1-by-1"]).abs()
        print(f"test AUC {other} vs keras 1-by-1: per head mean |diff| {diff.mean():.4f}, max {diff.max():.4f}; "
              f"per dataset x variant (mean over backbones) max |diff| {cell_diff.max():.4f}; "
              f"mean AUC {table[f'auc {other}'].mean():.4f} vs {table['auc keras 1-by-1'].mean():.4f}")
    print("all backbones: " + ", ".join(f"{w} {t:.1f} s" for w, t in totals.items()) +
          f" -> stacked {totals['keras 1-by-1'] / totals['numpy stacked']:.1f}x, "
          f"numpy 1-by-1 {totals['keras 1-by-1'] / totals['numpy 1-by-1']:.1f}x faster than keras 1-by-1")


if __name__ == "__main__":
    main()
