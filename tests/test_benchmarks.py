"""The GPU benchmark script runs (tiny CPU version) and refuses to pretend without a GPU."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_benchmark_needs_a_gpu_or_cpu_smoke(capsys):
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: the refusal path does not apply")
    assert _load("gpu_paper").main(["--datasets", "CMLN"]) == 2
    assert "no GPU visible" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_benchmark_cpu_smoke_prints_rates_and_projection(tmp_path, capsys):
    code = _load("gpu_paper").main(["--cpu-smoke", "--runs", str(tmp_path), "--datasets", "Max tumour",
                                    "--backbones", "efficientnet-lite0"])  # the quickest to build
    out = capsys.readouterr().out
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("efficientnet-lite0"))
    train_rate, pred_rate = (float(v) for v in line.split()[1:3])
    assert train_rate > 0 and pred_rate > 0
    assert "projected full grid (8 models x 40 epochs, the benchmarked backbones): one GPU" in out  # 1 backbone x 4 datasets x 2 variants
