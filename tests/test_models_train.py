"""Backbones, weights provenance, and training on the smoke profile (all four backbones)."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from npc_lib.learn import models# noqa: E402
from npc_lib.cli import main  # noqa: E402
from npc_lib.config import load_profile  # noqa: E402
from npc_lib.errors import NpcError  # noqa: E402
from npc_lib.learn.models import BACKBONES, build_classifier, input_size_for, resolve_weights  # noqa: E402
from npc_lib.learn.study import grid, prepare, train_grid  # noqa: E402
from npc_lib.learn.features import extract_features  # noqa: E402
from npc_lib.learn.train import train_head  # noqa: E402


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_builds_flat_at_its_minimum_size(name):
    spec = BACKBONES[name]
    model = build_classifier(name, spec.min_size, None)
    assert model.output_shape == (None, 1)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "nested sub-model"
    conv = model.get_layer(spec.last_conv)
    assert len(conv.output.shape) == 4
    assert model.get_layer("gap").output.shape[-1] == spec.feature_dim
    keras.backend.clear_session()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_gradcam_layer_is_at_least_5x5_at_the_demo_input(name):
    from npc_lib.analysis.gradcam import MIN_CAM_GRID, cam_layer
    spec = BACKBONES[name]
    model = build_classifier(name, input_size_for(name, 80), None)
    chosen = cam_layer(model, spec)
    grid = model.get_layer(chosen).output.shape[1:3]
    assert min(grid) >= MIN_CAM_GRID, (chosen, grid)
    last = model.get_layer(spec.last_conv).output.shape[1:3]
    assert min(last) < MIN_CAM_GRID and chosen != spec.last_conv  # the last map is too coarse at 80 px
    big = build_classifier(name, 224, None)
    assert cam_layer(big, spec) == spec.last_conv  # 7 x 7 at 224 px: the classic layer
    keras.backend.clear_session()


def test_offline_imagenet_fails_fast_or_falls_back(monkeypatch):
    monkeypatch.setattr(models, "_keras_cached", lambda spec: False)
    monkeypatch.setattr(models, "_reachable", lambda host, timeout=10: (False, f"{host} unreachable"))
    with pytest.raises(NpcError) as err:
        resolve_weights("resnet50", "imagenet", fallback=None)
    assert "weights file" in err.value.hint and "none" in err.value.hint
    weights, prov = resolve_weights("resnet50", "imagenet", fallback="none")
    assert weights is None and prov["used"] == "random" and "randomly initialised" in prov["note"]


def test_unreachable_host_is_detected_quickly():
    t0 = time.perf_counter()
    ok, why = models._reachable("weights.example.invalid", timeout=5)
    assert not ok and why and time.perf_counter() - t0 < 30


def test_local_weights_file_is_loaded_and_hashed(tmp_path):
    keras.utils.set_random_seed(1)
    m = models.build_feature_extractor("efficientnet-b0", 32, None)
    path = tmp_path / "effnet.weights.h5"
    m.save_weights(path)
    weights, prov = resolve_weights("efficientnet-b0", str(path))
    assert prov["used"] == "file" and len(prov["sha256"]) == 64
    keras.utils.set_random_seed(2)
    m2 = models.build_feature_extractor("efficientnet-b0", 32, weights)
    for a, b in zip(m.weights, m2.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(NpcError, match="not found"):
        resolve_weights("efficientnet-b0", str(tmp_path / "missing.h5"))


def test_smoke_grid_writes_every_run(smoke_runs):
    dirs = sorted(p for p in (smoke_runs / "models").iterdir() if p.is_dir())
    assert len(dirs) == 40
    for d in dirs:
        meta = json.loads((d / "run.json").read_text())
        assert meta["mode"] == "head" and len(meta["config_hash"]) == 16
        assert meta["weights"]["used"] == "random" and meta["versions"]["tensorflow"]
        assert meta["seeds"]["train"] == 42 and meta["peak_rss_mb"] > 0
        hist = pd.read_csv(d / "history.csv")
        assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]
        assert len(hist) == 2 and hist[["train_loss", "test_loss"]].notna().all().all()
        pred = pd.read_parquet(d / "predictions.parquet")
        assert pred["probability"].between(0, 1).all()
        assert set(pred["split"]) == {"train", "test"}
        assert (d / "head.keras").is_file()


def test_no_patient_in_both_splits_and_one_split_for_all(smoke_runs):
    split = pd.read_csv(smoke_runs / "split.csv").set_index("patient_id")["split"]
    for d in (smoke_runs / "models").iterdir():
        pred = pd.read_parquet(d / "predictions.parquet")
        per_patient = pred.groupby("patient_id")["split"].nunique()
        assert (per_patient == 1).all()
        assert (pred["split"] == pred["patient_id"].map(split)).all()


def test_finished_runs_are_not_redone(smoke_runs, small_cohort, capsys):
    before = {d.name: (d / "run.json").stat().st_mtime_ns for d in (smoke_runs / "models").iterdir()}
    assert main(["train", str(small_cohort), "--profile", "smoke", "--runs", str(smoke_runs),
                 "--weights", "none", "--backbone", "resnet50"]) == 0
    assert "reused" in capsys.readouterr().out
    after = {d.name: (d / "run.json").stat().st_mtime_ns for d in (smoke_runs / "models").iterdir()}
    assert before == after


def test_head_mode_is_deterministic(smoke_runs, small_cohort, tmp_path):
    profile = load_profile("smoke", {"weights": "none"})
    prep = prepare(profile, small_cohort, smoke_runs, progress=False)
    feats = extract_features(prep.store, "efficientnet-b0", profile, smoke_runs / "cache")
    a = train_head(prep.store, feats["intra-peritumour"], "CMLN", "intra-peritumour", profile, prep.split, tmp_path / "a")
    b = train_head(prep.store, feats["intra-peritumour"], "CMLN", "intra-peritumour", profile, prep.split, tmp_path / "b")
    pa = pd.read_parquet(tmp_path / "a" / "predictions.parquet")
    pb = pd.read_parquet(tmp_path / "b" / "predictions.parquet")
    np.testing.assert_array_equal(pa["probability"], pb["probability"])
    assert a["config_hash"] == b["config_hash"]
    grid_pred = pd.read_parquet(smoke_runs / "models" / "cmln__intra-peritumour__efficientnet-b0" /
                                "predictions.parquet")
    np.testing.assert_array_equal(grid_pred["probability"], pa["probability"])


def test_fast_head_fit_learns_and_is_deterministic():
    from npc_lib.learn.headfit import fit_head
    from npc_lib.learn.models import build_head
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 16)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(np.float32)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        head = build_head(16, dropout=0.5, l2=1e-4)
        hist = fit_head(head, keras.optimizers.Adam(1e-2), X[:240], y[:240], X[240:], y[240:],
                        epochs=15, batch_size=32, seed=3)
        runs.append((hist, head.predict(X, verbose=0).ravel()))
    hist = runs[0][0]
    assert list(hist.columns) == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert hist["test_accuracy"].iloc[-1] > 0.85
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])


def test_unsupported_op_determinism_is_switched_off_and_recorded(small_cohort, tmp_path, monkeypatch):
    """Some GPU kernels have no deterministic version (TensorFlow raises UnimplementedError): the
    run goes on without op determinism and says so in run.json, never a crash. (The same run is the check that
    fine-tuning runs on a CPU at a tiny size: a saved model and a prediction for every image.)"""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config
    real_fit, calls = keras.Model.fit, []

    def fit_once_unimplemented(self, *args, **kwargs):
        calls.append(tf_config.is_op_determinism_enabled())
        if len(calls) == 1:
            raise tf.errors.UnimplementedError(None, None, "A deterministic GPU implementation of "
                                               "DepthwiseConv2dNativeBackpropFilter is not available")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_once_unimplemented)
    profile = load_profile("smoke", {"weights": "none", "train.mode": "finetune", "train.epochs": 1})
    prep = prepare(profile, small_cohort, tmp_path, progress=False)
    try:
        summary = train_grid(profile, prep, grid(profile, ["Max tumour"], ["intratumour"], ["efficientnet-lite0"]),
                             progress=False)
    finally:
        tf_config.enable_op_determinism()
    out = tmp_path / "models" / "max-tumour__intratumour__efficientnet-lite0"
    meta = json.loads((out / "run.json").read_text())
    assert list(summary["status"]) == ["trained"] and meta["mode"] == "finetune"
    model = keras.models.load_model(out / "model.keras")
    pred = pd.read_parquet(out / "predictions.parquet")
    assert len(pred) == prep.store.index["is_max_tumour"].sum() and model.output_shape == (None, 1)
    assert calls == [True, False]
    assert meta["determinism"]["op_determinism"] is False
    assert "DepthwiseConv2dNativeBackpropFilter" in meta["determinism"]["note"]


def test_paper_profile_refuses_random_weights_offline_within_seconds(monkeypatch, tmp_path, capsys):
    from npc_lib.cli import main
    monkeypatch.setattr(models, "_keras_cached", lambda spec: False)
    monkeypatch.setattr(models, "_reachable", lambda host, timeout=10: (False, f"{host} unreachable"))
    t0 = time.perf_counter()
    code = main(["run", "--profile", "paper", "--runs", str(tmp_path / "runs"), "--no-book"])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - t0 < 30
    assert "cannot get ImageNet weights" in err and "weights_fallback: error" in err
    assert "--weights FILE" in err and "--weights none" in err and str(models.keras_cache_dir()) in err
    assert not (tmp_path / "runs" / "cohort").exists()  # stopped before any long step


def test_random_initialisation_ignores_other_threads_drawing_from_pythons_random():
    """Keras draws unseeded initializer seeds from Python's ``random``, which a Dask worker's or a
    LocalCluster scheduler's threads also draw from; the same seed must give the same backbone."""
    import random
    import threading

    from npc_lib.learn.runtime import seeded_build

    def build() -> list[np.ndarray]:
        with seeded_build(42):
            return models.build_feature_extractor("resnet50", 32, None).get_weights()

    alone = build()
    stop = threading.Event()

    def chatter():  # what a worker's event loop does now and then (retry jitter, worker choice)
        while not stop.is_set():
            random.random()
            time.sleep(0)

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        busy = build()
    finally:
        stop.set()
        thread.join()
    assert len(alone) == len(busy) and all(np.array_equal(a, b) for a, b in zip(alone, busy))


def test_keras_own_seeding_still_works_after_a_seeded_build():
    from npc_lib.learn.runtime import seeded_build
    with seeded_build(1):
        models.build_head(8, dropout=0.5, l2=1e-4)
    kernels = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        kernels.append(models.build_head(8, dropout=0.5, l2=1e-4).get_weights()[0])
    np.testing.assert_array_equal(*kernels)
