"""Evaluation and Grad-CAM budgets on a finished grid (e.g. the 32 demo runs).

Usage: python benchmarks/bench_evaluate.py RUNS_DIR [--cams 16]

Prints: the full `evaluate` (metrics, 2000-resample bootstraps, DeLong matrix, tables, figures)
without and with the hybrid model; the patient bootstrap, vectorised vs a per-resample
scikit-learn loop (baseline, same data); Grad-CAM seconds per image, compiled step vs the same
computation run eagerly (baseline).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def naive_bootstrap(y, p, n_boot, seed=0):
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        out.append(roc_auc_score(y[idx], p[idx]))
    return np.percentile(out, [2.5, 97.5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--cams", type=int, default=16)
    a = ap.parse_args()
    import pandas as pd

    from npc_lib.analysis.cam_study import cam_study
    from npc_lib.analysis.evaluation import load_runs
    from npc_lib.analysis.study_evaluation import evaluate_study
    from npc_lib.analysis.metrics import bootstrap_auc_ci, patient_scores

    from npc_lib.layout import RunLayout
    work = Path(tempfile.mkdtemp())
    runs = work / "runs"
    runs.mkdir()
    source, layout = RunLayout(a.runs_dir), RunLayout(runs)
    for name in ("models", "cache", "split", "cohort_ref"):  # the evaluation writes under runs/evaluation
        getattr(layout, name).symlink_to(getattr(source, name).resolve())
    n = len(load_runs(layout.models))
    _, t_core = timed(evaluate_study, runs, hybrid_folds=0)
    _, t_all = timed(evaluate_study, runs, hybrid_folds=5)
    print(f"evaluate, {n} runs: core (metrics, CIs, DeLong, references, tables) {t_core:.1f} s; "
          f"with hybrid (5-fold OOF, 4 backbones) {t_all:.1f} s (budget 120 s)")

    meta, pred = load_runs(layout.models)[0]
    pts = patient_scores(pred[pred.split == "test"])
    y, p = pts["label"].to_numpy(), pts["probability"].to_numpy()
    _, t_vec = timed(bootstrap_auc_ci, y, p, None, 2000)
    _, t_loop = timed(naive_bootstrap, y, p, 2000)
    print(f"patient bootstrap (2000 resamples, {len(y)} patients): vectorised {t_vec * 1000:.0f} ms, "
          f"sklearn loop {t_loop * 1000:.0f} ms -> {t_loop / t_vec:.1f}x faster")

    res, t_cam = timed(cam_study, runs, n_images=a.cams, progress=False)
    per_image = res["seconds_per_image"]
    print(f"Grad-CAM study ({n} runs x {a.cams} images, incl. randomisation check): {t_cam:.1f} s; "
          f"compiled Grad-CAM {per_image * 1000:.1f} ms per image (budget 1000 ms)")
    tab = res["table"]
    print(tab.groupby("backbone")[["cam_in_roi", "area_share", "enrichment", "randomised_spearman"]]
          .mean().round(3).to_string())

    # eager baseline for one backbone: the same Grad-CAM without tf.function
    import tensorflow as tf

    from npc_lib.data.cache import open_image_store
    from npc_lib.analysis.gradcam import load_run_model
    from npc_lib.learn.loaders import preprocess_images
    from npc_lib.learn.models import backbone
    for b in ("resnet50", "efficientnet-b0"):
        run = next(d for d in sorted(layout.models.iterdir()) if d.name.endswith(b))
        m, _ = next((mm, pp) for mm, pp in load_runs(layout.models) if mm["config"]["backbone"] == b)
        store = open_image_store(layout.image_store(m["store_fingerprint"]), verify=False)
        cm = load_run_model(runs, run)
        x = preprocess_images(np.asarray(store.images("intra-peritumour")[:32]), backbone(b), cm.input_size)

        def eager(xb):
            with tf.GradientTape() as tape:
                maps, prob = cm.grad_model(xb, training=False)
            g = tape.gradient(prob[:, 0], maps)
            return tf.nn.relu(tf.einsum("bhwk,bk->bhw", maps, tf.reduce_mean(g, axis=(1, 2))))

        from npc_lib.analysis.gradcam import gradcam
        gradcam(cm, x)  # trace once
        _, t_c = timed(gradcam, cm, x)
        eager(tf.constant(x))
        _, t_e = timed(eager, tf.constant(x))
        print(f"{b}: Grad-CAM 32 images compiled {t_c / 32 * 1000:.1f} ms/img, eager {t_e / 32 * 1000:.1f} ms/img "
              f"-> {t_e / t_c:.1f}x")
    shutil.rmtree(work)
    pd.set_option("display.width", 200)


if __name__ == "__main__":
    main()
