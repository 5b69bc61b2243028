"""One process per run folder: a second command stops at once, naming the holder; a dead holder's
lock is taken over; the lock goes when the command ends, even on an error."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from npc_lib.cli import main
from npc_lib.errors import NpcError
from npc_lib.layout import RunLayout
from npc_lib.run_lock import run_lock


def test_a_second_command_on_a_busy_folder_stops_naming_the_holder(tmp_path, capsys):
    runs = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from npc_lib.run_lock import run_lock\n"
                               f"with run_lock({str(runs)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        assert main(["evaluate", str(runs)]) == 2
        assert time.perf_counter() - t0 < 5
        err = capsys.readouterr().err
        assert f"in use by process {holder.pid} on {socket.gethostname()}" in err and str(runs) in err
        assert "delete" in err  # the hint says what to do if the holder is gone
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over_and_released(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = RunLayout(tmp_path).lock
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "earlier"}))
    with caplog.at_level("WARNING"):
        with run_lock(tmp_path):
            assert json.loads(lock.read_text())["pid"] != gone.pid
    assert "taking over the lock" in caplog.text and str(gone.pid) in caplog.text
    assert not lock.exists()


def test_a_lock_from_another_host_is_never_guessed_dead(tmp_path):
    lock = RunLayout(tmp_path).lock
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "earlier"}))
    with pytest.raises(NpcError, match="in use by process 1 on elsewhere.example"):
        with run_lock(tmp_path):
            pass
    assert lock.exists()  # not ours to remove


def test_the_lock_goes_when_the_command_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            assert RunLayout(tmp_path).lock.exists()
            raise RuntimeError("boom")
    assert not RunLayout(tmp_path).lock.exists()
    with run_lock(tmp_path):  # free again
        pass
