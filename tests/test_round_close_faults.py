"""Write faults at each point of the round close, over real gRPC to an in-process server.

Every fault must fail its round cleanly (model, version and store as before, the reason
recorded when the store takes it), and the next round runs normally: at the end the run's
model version equals the number of completed rounds, and each completed round's recorded
version is its rank among them.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest

import fedserver.coordinator as coordinator_module
from fedcore.model_codec import model_digest
from fedserver.checkpoint import file_digest
from fedserver.round_state import RoundStateMachine
from fedserver.server import EXIT_FATAL, RunningServer, serve
from fedserver.store import StoreError
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta


def run_round(server: RunningServer, client: RawClient) -> None:
    """One round with one client pushing +0.01 everywhere; returns after the close."""
    task = client.round()
    delta = {k: np.full_like(v, 0.01) for k, v in zero_delta(client.pull(task)).items()}
    assert client.push_payload(*update_for(task, delta)).accepted  # the close runs inside


def fail_once_at(round_: int, server: RunningServer, error: Exception):  # type: ignore[no-untyped-def]
    """A stand-in that raises ``error`` while the coordinator closes ``round_``."""
    def fault(*_args: object, **_kwargs: object) -> None:
        if server.coordinator.sm.step.round == round_:
            raise error
    return fault


def wrap(original, fault):  # type: ignore[no-untyped-def]
    def call(*args: object, **kwargs: object) -> object:
        fault(*args, **kwargs)
        return original(*args, **kwargs)
    return call


def test_write_faults_at_each_point_of_the_close_fail_only_their_round(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = server_config(tmp_path / "state", "round.rounds=6", "evaluation.test_set=")
    with running_server(config) as server:
        coord = server.coordinator
        enospc = OSError(errno.ENOSPC, "No space left on device")
        eio = OSError(errno.EIO, "Input/output error")
        # round 2: the checkpoint write; round 3: the round record (and the failure record
        # too: the store is still full); round 4: the report rewrite inside the record's
        # transaction.
        monkeypatch.setattr(coordinator_module, "save_model_state",
                            wrap(coordinator_module.save_model_state,
                                 fail_once_at(2, server, enospc)))
        monkeypatch.setattr(coord.store, "record_round",
                            wrap(coord.store.record_round,
                                 fail_once_at(3, server, StoreError("database or disk is full"))))
        monkeypatch.setattr(coordinator_module, "write_report",
                            wrap(coordinator_module.write_report, fail_once_at(4, server, eio)))
        client = RawClient(server.port)
        try:
            for round_ in range(1, 7):
                before = (model_digest(coord.model.params), coord.model.version,
                          [r.round for r in coord.store.rounds()])
                run_round(server, client)
                if round_ in (2, 3, 4):  # the model and the completed records are unchanged
                    assert model_digest(coord.model.params) == before[0]
                    assert coord.model.version == before[1]
                    assert not (coord.state_dir / "checkpoints" / f"round-{round_:05d}.npz"
                                ).exists()
        finally:
            client.close()
        rounds = {r.round: r for r in coord.store.rounds()}
        assert sorted(rounds) == [1, 2, 4, 5, 6]  # round 3 could not be recorded at all
        assert rounds[2].status == "failed" and "No space left" in rounds[2].reason
        assert rounds[4].status == "failed" and "Input/output" in rounds[4].reason
        completed = [r for r in rounds.values() if r.status == "completed"]
        assert [r.version for r in completed] == [1, 2, 3]
        assert coord.model.version == len(completed) == 3
        assert coord.sm.finished
        # the store's checkpoints are the newest two, verified by their digests
        refs = coord.store.checkpoints()
        assert [r.round for r in refs] == [6, 5]
        for ref in refs:
            assert file_digest(coord.state_dir / "checkpoints" / ref.name) == ref.sha256
        assert sorted(p.name for p in (coord.state_dir / "checkpoints").iterdir()) == [
            "round-00005.npz", "round-00006.npz"]
        assert coord.store.get_state("latest_checkpoint") == "round-00006.npz"


def test_an_unexpected_error_in_the_deadline_thread_stops_serve_non_zero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a silently dead thread: serve() returns EXIT_FATAL and logs the error."""
    calls = threading.Event()

    def broken(self: RoundStateMachine) -> None:
        calls.set()
        raise RuntimeError("injected bug")

    monkeypatch.setattr(RoundStateMachine, "next_deadline", lambda self: self._clock() + 0.05)
    monkeypatch.setattr(RoundStateMachine, "close_if_due", broken)
    config = server_config(tmp_path / "state", "evaluation.test_set=", "network.grace_s=0")
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(serve(config)))
    # serve installs signal handlers, which only the main thread may do
    monkeypatch.setattr("signal.signal", lambda *_a: None)
    worker.start()
    worker.join(60)
    assert calls.is_set() and result == [EXIT_FATAL]
