"""Benchmark: streamed feature extraction vs raw ``model.predict`` on an in-memory array (the ceiling).

For each backbone at the profile's input size, N uint8 ROI images are written to a memmap
store file; our path (tf.data from the memmap → preprocess → predict) is timed against
``model.predict`` on the same images already preprocessed in RAM. Target ratio ≥ 0.8.
Usage: python benchmarks/bench_features.py [--profile demo] [--images 1536] [--repeats 5] [--backbones ...]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main() -> None:
    from npc_lib.config import load_profile
    from npc_lib.learn.loaders import preprocessed_chunks, tf_images
    from npc_lib.learn.models import BACKBONES, build_feature_extractor, input_size_for

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--images", type=int, default=1536)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    a = ap.parse_args()
    profile = load_profile(a.profile)
    stored = profile.geometry.input_size
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "intra.u8"
        mm = np.memmap(path, dtype=np.uint8, mode="w+", shape=(a.images, stored, stored))
        mm[:] = rng.integers(0, 256, mm.shape, dtype=np.uint8)
        mm.flush()
        images = np.memmap(path, dtype=np.uint8, mode="r", shape=(a.images, stored, stored))
        print(f"profile {a.profile}: {a.images} images stored at {stored} px, batch {a.batch}")
        for name in a.backbones:
            spec = BACKBONES[name]
            size = input_size_for(name, stored)
            model = build_feature_extractor(name, size, None)
            ds = tf_images(images, np.arange(a.images), spec, size, a.batch)
            x = np.concatenate([b.numpy() for b in ds])  # the same preprocessed images, in RAM

            def streamed():  # what extract_features does: sequential preprocessed chunks of the memmap
                return np.concatenate([model.predict(c, batch_size=a.batch, verbose=0)
                                       for c in preprocessed_chunks(images, spec, size)])
            model.predict(x[: a.batch], verbose=0)  # warm-up (graph tracing) for both paths
            ceil_t, ours_t = [], []
            for _ in range(a.repeats):  # alternate the two paths; medians resist machine noise
                t0 = time.perf_counter()
                model.predict(x, batch_size=a.batch, verbose=0)
                ceil_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                streamed()
                ours_t.append(time.perf_counter() - t0)
            ceiling, ours = a.images / np.median(ceil_t), a.images / np.median(ours_t)
            print(f"  {name:20s} at {size:3d} px: in-memory predict {ceiling:7.1f} img/s, streamed {ours:7.1f} img/s, "
                  f"ratio {ours / ceiling:4.2f} (median of {a.repeats})")
            import keras
            keras.backend.clear_session()


if __name__ == "__main__":
    main()
