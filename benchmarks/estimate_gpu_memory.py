"""Estimate: does fine-tuning at batch 32 and 512 px fit one 80 GB GPU, per backbone?

An estimate from the model graph (no GPU needed): parameters (float32 weights, gradients and
Adam's two moments: 16 bytes each) plus activations (every layer output of one batch, kept for the
backward pass, float16 under mixed precision: 2 bytes each; counted twice for the gradients of the
activations and cuDNN workspace). ``benchmarks/gpu_paper.py`` measures the real peak on a GPU.
"""
from __future__ import annotations

import argparse

import numpy as np

import npc_lib  # noqa: F401 - quiet TensorFlow start-up
from npc_lib.learn.models import BACKBONES, build_classifier


def estimate(name: str, size: int, batch: int) -> tuple[int, int, float]:
    import keras
    model = build_classifier(name, size, None)
    params = int(sum(np.prod(w.shape) for w in model.weights))
    acts = 0
    for layer in model.layers:
        for t in (layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]):
            acts += int(np.prod([d for d in t.shape[1:]]))
    keras.backend.clear_session()
    gib = (params * 16 + acts * batch * 2 * 2) / 2**30
    return params, acts, gib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--gpu-gib", type=float, default=80.0)
    a = ap.parse_args()
    print(f"{'backbone':20s} {'parameters':>12s} {'activations/img':>16s} {'est. GiB':>9s}  fits {a.gpu_gib:.0f} GiB")
    for name in BACKBONES:
        params, acts, gib = estimate(name, a.size, a.batch)
        print(f"{name:20s} {params:12,d} {acts:16,d} {gib:9.1f}  {'yes' if gib < a.gpu_gib else 'NO'} "
              f"(x{gib / a.gpu_gib:.2f} of the GPU)")


if __name__ == "__main__":
    main()
