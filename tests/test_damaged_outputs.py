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
