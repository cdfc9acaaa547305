"""Disk-full drill: the coordinator's state folder on a tiny tmpfs that fills up and frees.

``python -m fedserver`` runs in its own user and mount namespace (``unshare -rm``) with
its state folder on a 4 MiB tmpfs mounted there; the test reaches that filesystem through
``/proc/<pid>/root``. After round 1 the disk is filled to the last byte: round 2 must fail
cleanly (model and version unchanged, one ERROR line naming the round and ENOSPC, the
previous checkpoint still loadable with its recorded digest) and the coordinator keeps
serving; once the space is freed, rounds 3 and 4 complete and the run's versions equal its
completed rounds. (Write faults at each point of the close are injected one by one in
``tests/test_round_close_faults.py``; this drill is the real filesystem.)
"""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fedserver.checkpoint import read_checkpoint
from tests.helpers import (
    RawClient,
    server_config,
    stop,
    update_for,
    wait_for,
    write_config,
    zero_delta,
)


def _can_mount_tmpfs(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs tmpfs {where}"],
                           capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its filesystem refuses (ENOSPC)."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (64 << 10))
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast


def one_round(client: RawClient) -> int:
    """Run the next round with +0.01 everywhere; returns the model version trained on."""
    task = client.round(max_wait_ms=20_000)
    delta = {k: np.full_like(v, 0.01) for k, v in zero_delta(client.pull(task)).items()}
    assert client.push_payload(*update_for(task, delta)).accepted  # the close runs inside
    return task.model_version


def test_a_full_disk_fails_the_round_cleanly_and_the_run_recovers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    if not _can_mount_tmpfs(state):
        pytest.skip("cannot mount a tmpfs in a user namespace here (unshare -rm)")
    config = write_config(tmp_path / "server.toml", server_config(
        state, "round.rounds=4", "evaluation.test_set=", "round.deadline_s=60"))
    # (rounds: 1 completes, 2 fails on the full disk, 3 completes after it is freed, 4 ends)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c",
             f'mount -t tmpfs -o size=4m tmpfs "{state}" && exec "{sys.executable}" '
             f'-m fedserver --config "{config}"'], stdout=out, stderr=subprocess.STDOUT)
    inside = Path(f"/proc/{proc.pid}/root") / state.relative_to("/")  # the tmpfs
    client = None
    try:
        endpoint = wait_for(lambda: proc.poll() is None and _read(inside / "endpoint.json"),
                            120, "the coordinator's endpoint")
        client = RawClient(int(endpoint["port"]))
        assert one_round(client) == 0
        ballast = fill(inside)
        assert one_round(client) == 1  # round 2: its close hits the full disk
        (_round, name, digest), = _checkpoints(inside)  # the previous one...
        assert name == "round-00001.npz"  # ...still recorded, intact and loadable
        ballast.unlink()  # space is back
        assert one_round(client) == 1, "round 2 must not have advanced the model"  # round 3
        rounds = _rounds(inside)  # read while round 4 keeps the process alive
        refs = _checkpoints(inside)
        assert one_round(client) == 2  # round 4, the last
        proc.terminate()  # skip the linger that lets waiting clients hear SHUTDOWN
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if client is not None:
            client.close()
        stop([proc])
    text = log.read_text()
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert "Traceback" not in text
    (line,) = errors  # one clear line for the failed round, nothing else at ERROR
    assert "round 2 failed at close, model unchanged at version 1" in line
    assert "No space left on device" in line
    statuses = {r[0]: r for r in rounds}
    assert statuses[1][1] == statuses[3][1] == "completed"
    # the failure is recorded when the store still had room in its write-ahead log
    assert 2 not in statuses or (statuses[2][1] == "failed"
                                 and "No space left" in statuses[2][2])
    assert [r[3] for r in rounds if r[1] == "completed"] == [1, 2]  # versions = completions
    assert [r[:2] for r in refs] == [(3, "round-00003.npz"), (1, "round-00001.npz")]


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _query(inside: Path, sql: str) -> list[tuple]:
    """Read the live store through a copy of its files (SQLite would resolve the
    ``/proc/<pid>/root`` link to the folder outside the namespace)."""
    copy = Path(tempfile.mkdtemp(prefix="store-copy-"))
    try:
        for name in ("fedprune.sqlite", "fedprune.sqlite-wal"):
            if (inside / name).exists():
                shutil.copy(inside / name, copy / name)
        db = sqlite3.connect(copy / "fedprune.sqlite")
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    finally:
        shutil.rmtree(copy)


def _rounds(inside: Path) -> list[tuple[int, str, str, int]]:
    return _query(inside, "SELECT round, status, reason, version FROM rounds ORDER BY round")


def _checkpoints(inside: Path) -> list[tuple[int, str, str]]:
    """The store's checkpoints, newest first, each verified against its recorded digest."""
    refs = _query(inside, "SELECT round, name, sha256 FROM checkpoints ORDER BY round DESC")
    for _round, name, digest in refs:
        read_checkpoint(inside / "checkpoints" / name, sha256=digest)  # loadable, intact
    return refs
