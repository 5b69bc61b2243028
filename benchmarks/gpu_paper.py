"""Benchmark: the `paper` profile's fine-tuning on a GPU, and the projected full-grid wall time.

Fine-tunes a reduced paper grid (default: CMLN and NPC, intra-peritumour, all four backbones,
2 epochs at the profile's 512 px) on the paper-profile synthetic cohort and prints, per
backbone: training and prediction images/s, epoch wall time and peak GPU memory (TensorFlow's
allocator peak). It then projects the full 32-model, 40-epoch grid's wall time on one GPU and on
N GPUs (one job per GPU, the longest job bounding the wall time). Goal: the full paper grid in
<= 60 min on one H100-class GPU.

On a machine without a GPU it says so and exits with status 2; ``--cpu-smoke`` runs a tiny
version (a 30-patient smoke cohort, 32 px, one epoch, random weights) so the script itself is tested on CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import npc_lib  # noqa: F401 - quiet TensorFlow start-up
from npc_lib.config import load_profile
from npc_lib.learn.loaders import tf_images
from npc_lib.learn.models import backbone, input_size_for
from npc_lib.data.rois import dataset_mask
from npc_lib.learn.study import dataset_counts, prepare
from npc_lib.synth import ensure_cohort
from npc_lib.layout import RunLayout
from npc_lib.learn.train import train_finetune


def _gpu_peak_mb(tf) -> float:
    try:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    except (ValueError, RuntimeError):
        return float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("runs/bench-gpu"))
    ap.add_argument("--datasets", nargs="+", default=["CMLN", "NPC"])
    ap.add_argument("--variant", default="intra-peritumour")
    ap.add_argument("--backbones", nargs="+", default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--weights", default=None, help="imagenet (profile default), a file, or none")
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8], help="GPU counts to project for")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run that only checks the script")
    a = ap.parse_args(argv)
    import tensorflow as tf
    if not a.cpu_smoke and not tf.config.list_physical_devices("GPU"):
        print("no GPU visible to TensorFlow: this benchmark measures the paper profile on a GPU "
              "(use --cpu-smoke for a tiny CPU check of the script)", file=sys.stderr)
        return 2
    overrides = {"train.epochs": a.epochs, "train.mode": "finetune"}
    if a.cpu_smoke:
        profile = load_profile("smoke", {**overrides, "train.epochs": 1, "weights": "none",  # the smallest cohort
                                         "cohort.patients": 30, "cohort.matrix": 48, "cohort.slices": 4})
    else:
        profile = load_profile("paper", overrides)
    if a.weights:
        profile = profile.replaced({"weights": a.weights})
    backbones = a.backbones or profile.backbones
    runs = a.runs / profile.name
    runs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cohort = ensure_cohort(profile, None, runs, progress=False)
    prep = prepare(profile, cohort, runs, progress=False)
    print(f"{profile.name} cohort and image store ready in {time.perf_counter() - t0:.0f} s; "
          f"device: {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}; {a.epochs if not a.cpu_smoke else 1} "
          f"epoch(s) per model")
    counts = dataset_counts(prep.store, prep.split).pivot_table(index="dataset", columns="split", values="images")
    epochs = int(profile.train.epochs)
    rates = {}
    print(f"{'backbone':20s} {'train img/s':>11s} {'predict img/s':>13s} {'epoch s':>8s} {'peak GPU MB':>11s}")
    for b in backbones:
        train_imgs = pred_imgs = train_s = pred_s = 0.0
        peak = 0.0
        for d in a.datasets:
            try:
                tf.config.experimental.reset_memory_stats("GPU:0")
            except (ValueError, RuntimeError):
                pass
            out = RunLayout(runs).model(d, a.variant, b)
            meta = train_finetune(prep.store, d, a.variant, b, profile, prep.split, out, progress=False)
            n_train = float(counts.loc[d, "train"])
            n_all = float(counts.loc[d].sum())
            import keras
            model = keras.models.load_model(out.model)
            rows = prep.store.index.loc[dataset_mask(prep.store.index, d), "image_id"].to_numpy()
            size = input_size_for(b, profile.geometry.input_size)
            ds = tf_images(prep.store.images(a.variant), rows, backbone(b), size,
                           profile.train.batch_size)
            model.predict(ds.take(1), verbose=0)  # graph warm-up
            t1 = time.perf_counter()
            model.predict(ds, verbose=0)
            p = time.perf_counter() - t1
            keras.backend.clear_session()
            train_imgs += n_train * epochs
            train_s += max(1e-9, meta["wall_s"] - p)
            pred_imgs += n_all
            pred_s += p
            peak = max(peak, _gpu_peak_mb(tf))
        rates[b] = (train_imgs / train_s, pred_imgs / pred_s)
        epoch_s = train_s / (epochs * len(a.datasets))
        print(f"{b:20s} {rates[b][0]:11.1f} {rates[b][1]:13.1f} {epoch_s:8.1f} {peak:11.0f}")
    full = 40
    jobs = []
    for b in backbones:
        for d in counts.index:
            for _v in ("intratumour", "intra-peritumour"):
                jobs.append(counts.loc[d, "train"] * full / rates[b][0] + counts.loc[d].sum() / rates[b][1])
    total = sum(jobs)
    print(f"projected full grid ({len(jobs)} models x {full} epochs, the benchmarked backbones): one GPU {total / 60:.0f} min; " + ", ".join(
        f"{n} GPUs {max(total / n, max(jobs)) / 60:.0f} min" for n in a.gpus if n > 1)
          + " (one job per GPU through Dask; the longest job bounds the wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
