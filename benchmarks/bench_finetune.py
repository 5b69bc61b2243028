"""Benchmark: what fine-tuning EfficientNet-Lite0 costs on this CPU, against the frozen-backbone path.

On the demo run's image store (``npc-study run --profile demo`` first), one dataset view: images per
second of the frozen backbone's forward pass (what head mode pays once per image), of one fine-tuning epoch
(forward + backward through every layer, ``tf.data`` from the image store) and of the stacked NumPy head
fit on cached features; the ratios say how many head-mode passes one fine-tuning epoch costs, and the
projected wall time of the demo's fine-tuning ablation (two inits × its datasets × its epochs).
Usage: python benchmarks/bench_finetune.py [--runs runs/demo] [--dataset CMLN] [--images 768]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import keras
    import numpy as np

    from npc_lib.config import load_profile
    from npc_lib.learn.loaders import tf_images
    from npc_lib.learn.models import backbone, build_classifier, input_size_for, resolve_weights
    from npc_lib.learn.study import open_prepared
    from npc_lib.learn.train import dataset_view

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=Path, default=Path("runs/demo"))
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--dataset", default="CMLN")
    ap.add_argument("--variant", default="intra-peritumour")
    ap.add_argument("--images", type=int, default=768, help="training images timed (a sample of the view)")
    a = ap.parse_args()
    profile = load_profile(a.profile)
    prep = open_prepared(a.runs)
    name = "efficientnet-lite0"
    spec, size = backbone(name), input_size_for(name, profile.geometry.input_size)
    view = dataset_view(prep.store, a.dataset, prep.split)
    train = view[view["split"] == "train"]
    rows = train["image_id"].to_numpy()[: a.images]
    y = train["label"].to_numpy(np.float32)[: a.images]
    images = prep.store.images(a.variant)
    weights, _ = resolve_weights(name, "imagenet", "none")
    net = build_classifier(name, size, weights, profile.train.dropout, profile.train.l2)
    net.compile(optimizer=keras.optimizers.Adam(profile.train.learning_rate), loss="binary_crossentropy")
    ds = tf_images(images, rows, spec, size, profile.train.batch_size, y, shuffle=True, seed=0)
    net.fit(ds.take(2), epochs=1, verbose=0, shuffle=False)  # graph warm-up, not timed (tf.data shuffles)
    t0 = time.perf_counter()
    net.fit(ds, epochs=1, verbose=0, shuffle=False)
    train_rate = len(rows) / (time.perf_counter() - t0)
    pred = tf_images(images, rows, spec, size, profile.train.batch_size)
    net.predict(pred.take(2), verbose=0)
    t0 = time.perf_counter()
    net.predict(pred, verbose=0)
    forward_rate = len(rows) / (time.perf_counter() - t0)
    spec_ft = profile.as_dict().get("finetune_ablation") or {}
    epochs = int(spec_ft.get("epochs", profile.train.epochs))
    n_train = sum(int((dataset_view(prep.store, d, prep.split)["split"] == "train").sum())
                  for d in spec_ft.get("datasets", [a.dataset]) for _ in spec_ft.get("variants", [a.variant]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; EfficientNet-Lite0 at {size} px, batch "
          f"{profile.train.batch_size}, {len(rows)} {a.dataset} {a.variant} training images")
    print(f"frozen forward pass (head mode, once per image): {forward_rate:7.1f} img/s")
    print(f"fine-tuning epoch (forward + backward):          {train_rate:7.1f} img/s  "
          f"(ratio {forward_rate / train_rate:.1f}x slower per image)")
    project = 2 * epochs * n_train / train_rate
    print(f"projected fine-tuning ablation: 2 inits x {epochs} epochs x {n_train} training images "
          f"= {project / 60:.1f} min (+ test scoring and graph warm-up)")


if __name__ == "__main__":
    main()
