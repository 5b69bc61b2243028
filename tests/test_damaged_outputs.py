"""A damaged or missing run output is detected and refitted, never reused; the refit equals the original."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("keras")

from npc_lib.cli import main  # noqa: E402


def test_damaged_run_outputs_are_refitted(smoke_runs, small_cohort, tmp_path, caplog):
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs)
    models = runs / "models"
    damaged = {"truncate": ("npc__intratumour__efficientnet-lite0", "predictions.parquet"),
               "delete": ("npc__intra-peritumour__efficientnet-lite0", "predictions.parquet"),
               "flip": ("cmln__intratumour__efficientnet-lite0", "head.keras")}
    before = {run: pd.read_parquet(models / run / "predictions.parquet") for run, _ in damaged.values()}
    intact = models / "cmln__intra-peritumour__efficientnet-lite0" / "run.json"
    intact_mtime = intact.stat().st_mtime_ns
    for how, (run, name) in damaged.items():
        target = models / run / name
        if how == "truncate":
            target.write_bytes(target.read_bytes()[:100])
        elif how == "delete":
            target.unlink()
        else:
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert main(["train", str(small_cohort), "--profile", "smoke", "--runs", str(runs), "--weights", "none",
                     "--backbone", "efficientnet-lite0", "--dataset", "NPC", "--dataset", "CMLN"]) == 0
    for how, (run, name) in damaged.items():
        assert f"{run}: {name} is {'missing' if how == 'delete' else 'damaged'}" in caplog.text
        pd.testing.assert_frame_equal(before[run], pd.read_parquet(models / run / "predictions.parquet"))
        assert (models / run / name).is_file()  # the same seed refitted the same head
    assert intact.stat().st_mtime_ns == intact_mtime  # the undamaged run of the same call was reused


def test_damaged_pixel_features_are_recomputed(smoke_runs, tmp_path, caplog):
    import numpy as np

    from npc_lib.analysis.references import store_features
    from npc_lib.config import load_profile
    from npc_lib.learn.study import open_prepared
    store = open_prepared(smoke_runs).store
    geometry = load_profile("smoke").geometry
    first = store_features(store, geometry, tmp_path)
    (cache,) = tmp_path.glob("pixel-features-*.npz")
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside an array: the zip's CRC-32 no longer matches
    cache.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        again = store_features(store, geometry, tmp_path)
    assert "is damaged" in caplog.text and cache.name in caplog.text
    for variant in first:
        np.testing.assert_array_equal(first[variant], again[variant])
    assert store_features(store, geometry, tmp_path).keys() == first.keys()  # the rewritten cache is whole


def test_a_damaged_executed_notebook_runs_again(tmp_path, monkeypatch, caplog):
    import os
    import sys
    from pathlib import Path

    from graph_stages import trivial_book
    from npc_lib.config import load_profile
    from npc_lib.executors import Executor
    from npc_lib.layout import RunLayout
    from npc_lib.runner import run_graph
    from npc_lib.stage import Stage
    from npc_lib.stages.context import RunContext
    from npc_lib.stages.notebooks import execute
    pytest.importorskip("papermill")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    book = trivial_book(tmp_path / "book", "print(dataset)")
    ctx = RunContext(load_profile("smoke"), RunLayout(book / "runs"), None, book)
    stages = [Stage(f"notebook:{d}", execute, ("03_train", d)) for d in ("NPC", "CMLN")]

    def run():
        with Executor(1) as ex:
            return [r.status for r in run_graph(stages, ctx, ex, progress=False).values()]
    assert run() == ["ran", "ran"]
    out = ctx.layout.executed_notebook("03_train", "cmln")
    out.write_bytes(out.read_bytes()[:200])  # an interrupted copy
    with caplog.at_level("WARNING"):
        assert run() == ["reused", "ran"]
    assert "notebook:CMLN" in caplog.text and "was changed since the stage wrote it" in caplog.text


def test_a_damaged_random_backbone_file_recomputes_the_features(smoke_runs, tmp_path, caplog):
    from npc_lib.config import load_profile
    from npc_lib.data.cache import sha256_file
    from npc_lib.layout import RunLayout
    from npc_lib.learn.features import extract_features
    from npc_lib.learn.study import open_prepared
    store = open_prepared(smoke_runs).store
    source = RunLayout(smoke_runs).features(store.fingerprint)
    cache = tmp_path / "cache"
    (folder,) = [p for p in source.glob("efficientnet-lite0-*") if (p / "backbone.weights.h5").is_file()]
    shutil.copytree(folder, RunLayout(tmp_path).features(store.fingerprint) / folder.name)
    weights = RunLayout(tmp_path).features(store.fingerprint) / folder.name / "backbone.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    profile = load_profile("smoke", {"weights": "none"})
    with caplog.at_level("WARNING"):
        extract_features(store, "efficientnet-lite0", profile, cache)
    assert "backbone.weights.h5 checksum mismatch" in caplog.text
    assert sha256_file(weights) == sha256_file(folder / "backbone.weights.h5")  # the same seed rebuilt it
