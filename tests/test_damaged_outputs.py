"""A damaged or missing run output is detected and refitted, never reused; the refit equals the original."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("keras")

from npc_lib.cli import main  # noqa: E402


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_a_damaged_run_output_is_refitted(smoke_runs, small_cohort, tmp_path, caplog, damage):
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs)
    run = runs / "models" / "cmln__intratumour__efficientnet-lite0"
    before = pd.read_parquet(run / "predictions.parquet")
    other = runs / "models" / "cmln__intra-peritumour__efficientnet-lite0" / "run.json"
    other_mtime = other.stat().st_mtime_ns
    target = run / ("predictions.parquet" if damage != "flip" else "head.keras")
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert main(["train", str(small_cohort), "--profile", "smoke", "--runs", str(runs), "--weights", "none",
                     "--backbone", "efficientnet-lite0", "--dataset", "CMLN"]) == 0
    assert f"{target.name} is {'missing' if damage == 'delete' else 'damaged'}" in caplog.text
    after = pd.read_parquet(run / "predictions.parquet")
    pd.testing.assert_frame_equal(before, after)  # the same seed refits the same head
    assert (run / target.name).is_file()
    assert other.stat().st_mtime_ns == other_mtime  # the undamaged run of the same call was reused
