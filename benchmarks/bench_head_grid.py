"""Benchmark: the 32-model ``head`` grid (features once + cached-feature heads) vs the naive way.

Naive: each of the 32 models is a frozen-backbone ``keras.Model.fit`` on streamed images, so the
backbone forward pass is recomputed for every image in every one of the 40 epochs (plus the
test images every epoch for the history). Its per-image cost is measured on a subset (one epoch
of K training images and K/4 test images per backbone, after a warm-up epoch) and extrapolated
to the real dataset sizes; ours is measured in full (feature extraction of both variants, then
the 8 heads per backbone). Usage:
  python benchmarks/bench_head_grid.py COHORT_DIR [--profile demo] [--runs DIR] [--subset 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main() -> None:
    import keras

    from npc_lib.config import load_profile
    from npc_lib.learn.loaders import tf_images
    from npc_lib.learn.models import BACKBONES, build_classifier, input_size_for
    from npc_lib.data.rois import dataset_mask
    from npc_lib.learn.study import prepare
    from npc_lib.learn.features import extract_features
    from npc_lib.learn.train import train_head

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--runs", type=Path, help="run folder whose image store to reuse (default: a temp folder)")
    ap.add_argument("--subset", type=int, default=256)
    ap.add_argument("--backbones", nargs="+")
    a = ap.parse_args()
    profile = load_profile(a.profile, {"weights": "none"})
    epochs = int(profile["train"]["epochs"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    runs = a.runs or tmp
    prep = prepare(profile, a.cohort, runs, progress=False)
    index = prep.store.index.assign(split=lambda d: d.patient_id.map(prep.split))
    sizes = []
    for d in profile["datasets"]:
        v = index[dataset_mask(index, d)]
        sizes.append(((v.split == "train").sum(), (v.split == "test").sum()))
    sizes = sizes * len(profile["variants"])  # same images per variant
    total_ours = total_naive = 0.0
    try:
        for name in a.backbones or profile["backbones"]:
            spec = BACKBONES[name]
            size = input_size_for(name, profile["geometry"]["input_size"])
            cache = tmp / f"cache-{name}"
            t0 = time.perf_counter()
            feats = extract_features(prep.store, name, profile, cache)
            t_feat = time.perf_counter() - t0
            t0 = time.perf_counter()
            for d in profile["datasets"]:
                for var in profile["variants"]:
                    train_head(prep.store, feats[var], d, var, profile, prep.split,
                               tmp / "heads" / f"{name}-{d}-{var}")
            t_heads = time.perf_counter() - t0
            ours = t_feat + t_heads
            # naive: a frozen-backbone fit on streamed images, one epoch of a subset
            keras.utils.set_random_seed(0)
            model = build_classifier(name, size, None)
            for layer in model.layers:
                if layer.name not in ("head_dropout", "dm_probability"):
                    layer.trainable = False
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
            images = prep.store.images("intratumour")
            rows = np.arange(min(a.subset, images.shape[0]))
            labels = prep.store.index["label"].to_numpy(np.float32)[rows]
            k_test = max(1, len(rows) // 4)
            train_ds = tf_images(images, rows, spec, size, 32, labels, shuffle=True)
            test_ds = tf_images(images, rows[:k_test], spec, size, 32, labels[:k_test])
            model.fit(train_ds, epochs=1, validation_data=test_ds, verbose=0)  # warm-up (tracing)
            t0 = time.perf_counter()
            model.fit(train_ds, epochs=1, validation_data=test_ds, verbose=0)
            per_epoch = time.perf_counter() - t0
            t_img = per_epoch / (len(rows) + k_test)  # blended; test images are cheaper (no backprop)
            naive = sum(epochs * (n_tr + n_te) * t_img for n_tr, n_te in sizes)
            total_ours += ours
            total_naive += naive
            print(f"{name:20s} {size:3d} px: ours {ours:7.1f} s (features {t_feat:6.1f} s + 8 heads {t_heads:5.1f} s); "
                  f"naive {naive:8.0f} s (measured {1 / t_img:5.1f} img/s over {len(rows) + k_test} images, "
                  f"x {epochs} epochs x 8 runs) -> {naive / ours:5.1f}x")
            keras.backend.clear_session()
        print(f"all backbones: ours {total_ours:.0f} s, naive {total_naive:.0f} s -> {total_naive / total_ours:.1f}x faster")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
