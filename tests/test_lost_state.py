"""Lost or damaged state never resets a run silently (``fedserver`` as a real process).

A run of three completed rounds is made in-process; then the state folder is damaged the
way an operator's disk or hands do it, and ``python -m fedserver`` is started on it: it
either refuses (exit 2, one line naming the file and the recovery flags, no traceback) or
falls back to the previous good checkpoint with a WARNING and resumes from it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedserver.store import RunStore
from tests.helpers import (
    RawClient,
    running_server,
    server_config,
    update_for,
    wait_for,
    write_config,
    zero_delta,
)

pytestmark = pytest.mark.slow
OVERRIDES = ("evaluation.test_set=", "round.rounds=5")


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    """A state folder after three completed rounds (checkpoints of rounds 2 and 3 kept)."""
    folder = tmp_path / "state"
    with running_server(server_config(folder, *OVERRIDES)) as server:
        client = RawClient(server.port)
        try:
            for _ in range(3):
                task = client.round()
                delta = {k: np.full_like(v, 0.01) for k, v in zero_delta(client.pull(task)).items()}
                assert client.push_payload(*update_for(task, delta)).accepted
        finally:
            client.close()
        assert server.coordinator.model.version == 3
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "round-00002.npz", "round-00003.npz"]
    return folder


def fedserver(state: Path, *flags: str) -> list[str]:
    config = write_config(state.parent / "server.toml", server_config(state, *OVERRIDES))
    return [sys.executable, "-m", "fedserver", "--config", str(config), *flags]


def refused(state: Path, *flags: str) -> str:
    """Run fedserver expecting a refusal; returns its one error line."""
    proc = subprocess.run(fedserver(state, *flags), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert "--new-run" in errors[0] and "--from-checkpoint" in errors[0]
    return errors[0]


def started(state: Path, *flags: str, expect: str) -> str:
    """Run fedserver until its log shows ``expect``, then SIGTERM it; returns the log."""
    log = state.parent / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(fedserver(state, *flags), stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: expect in log.read_text() or proc.poll() is not None, 120, expect)
        assert expect in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return log.read_text()


def test_empty_store_refuses_naming_it(state: Path) -> None:
    (state / "fedprune.sqlite").write_bytes(b"")
    line = refused(state)
    assert f"{state / 'fedprune.sqlite'} is empty" in line
    assert str(state / "checkpoints" / "round-00003.npz") in line  # an intact file to resume


def test_deleted_store_refuses_naming_it(state: Path) -> None:
    (state / "fedprune.sqlite").unlink()
    assert f"{state / 'fedprune.sqlite'} is missing" in refused(state)


def test_garbage_store_refuses_naming_it(state: Path) -> None:
    (state / "fedprune.sqlite").write_bytes(b"not a database, just bytes" * 100)
    assert f"{state / 'fedprune.sqlite'} is damaged" in refused(state)


def test_truncated_latest_checkpoint_falls_back_to_the_previous(state: Path) -> None:
    latest = state / "checkpoints" / "round-00003.npz"
    latest.write_bytes(latest.read_bytes()[:100])
    log = started(state, expect="starting at round 3 (model version 2")
    assert "WARNING" in log and "falling back to the previous good checkpoint round-00002.npz" in log
    assert "does not match its recorded SHA-256" in log
    store = RunStore(state / "fedprune.sqlite")
    try:
        assert [r.round for r in store.rounds()] == [1, 2]  # round 3 runs again
    finally:
        store.close()


def test_deleted_latest_checkpoint_falls_back_to_the_previous(state: Path) -> None:
    (state / "checkpoints" / "round-00003.npz").unlink()
    log = started(state, expect="starting at round 3 (model version 2")
    assert "round-00003.npz is missing" in log and "falling back" in log


def test_no_good_checkpoint_refuses_naming_the_latest(state: Path) -> None:
    for name in ("round-00002.npz", "round-00003.npz"):
        (state / "checkpoints" / name).write_bytes(b"junk")
    line = refused(state)
    assert "round-00003.npz does not match its recorded SHA-256" in line
    assert "no earlier good checkpoint" in line


def test_new_run_moves_the_old_state_aside(state: Path) -> None:
    (state / "fedprune.sqlite").write_bytes(b"")
    started(state, "--new-run", expect="starting at round 1 (model version 0")
    previous = list((state / "previous").iterdir())
    assert len(previous) == 1
    assert (previous[0] / "checkpoints" / "round-00003.npz").is_file()
    assert (previous[0] / "fedprune.sqlite").stat().st_size == 0  # kept as it was


def test_from_checkpoint_resumes_after_the_store_is_lost(state: Path, tmp_path: Path) -> None:
    (state / "fedprune.sqlite").unlink()
    log = started(state, "--from-checkpoint", str(state / "checkpoints" / "round-00003.npz"),
                  expect="starting at round 4 (model version 3")
    assert "resuming from checkpoint" in log
    assert (state / "checkpoints" / "round-00003.npz").is_file()


def test_orphan_temp_files_are_removed_at_start_up(state: Path) -> None:
    orphan = state / "checkpoints" / "round-00004.npzab12.tmp"
    orphan.write_bytes(b"half a checkpoint")
    log = started(state, expect="starting at round 4 (model version 3")
    assert not orphan.exists() and f"removed orphan temporary file {orphan}" in log
