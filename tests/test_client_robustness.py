"""The client daemon against a real coordinator: final refusals, backoff, clear exits."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from fedclient.config import ClientConfig
from fedclient.daemon import EXIT_REFUSED, ClientDaemon, _TaskFailed
from fedclient.local_work import TrainOutcome
from tests.helpers import (
    TOKEN,
    RawClient,
    running_server,
    server_config,
    update_for,
    wait_for,
    zero_delta,
)


def daemon_for(port: int, client_id: str, worker: object = None) -> ClientDaemon:
    return ClientDaemon(ClientConfig(server=f"127.0.0.1:{port}", client_id=client_id,
                                     token=TOKEN, backoff_initial_s=0.05, backoff_max_s=0.4),
                        worker=worker)  # type: ignore[arg-type]


def counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(obj, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(obj, name, wrapper)
    return calls


def test_a_push_refused_as_late_is_sent_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Over-selection: c2's update closes the round long before the deadline, so c1's
    push is refused as late; the daemon must not upload it again."""
    config = server_config(tmp_path / "state", "evaluation.test_set=",
                           "round.over_selection=1.0", "round.deadline_s=60")
    with running_server(config) as server:
        raw = [RawClient(server.port, "c1"), RawClient(server.port, "c2")]
        daemon = daemon_for(server.port, "c1")
        try:
            with ThreadPoolExecutor(2) as pool:
                t1, t2 = pool.map(lambda c: c.round(), raw)
            delta = zero_delta(raw[1].pull(t2))
            assert raw[1].push_payload(*update_for(t2, delta)).accepted
            wait_for(lambda: server.coordinator.model.version == 1, 30, "round 1 to close")
            pushes = counting(monkeypatch, server.coordinator, "begin_push")
            outcome = TrainOutcome(delta=delta, scores=None, num_examples=10,
                                   metrics={"train_loss": 0.0})
            with pytest.raises(_TaskFailed, match="refused as late"):
                daemon._push(t1, outcome, None, 0.0)
            assert len(pushes) == 1
            assert time.time() * 1000 < t1.deadline_unix_ms  # refused on merit, not by time
        finally:
            daemon.close()
            for c in raw:
                c.close()


def test_persistent_refusals_back_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check-in the coordinator refuses every time (2^41 examples, INVALID_ARGUMENT)."""
    config = server_config(tmp_path / "state", "evaluation.test_set=")
    with running_server(config) as server:
        check_ins = counting(monkeypatch, server.coordinator, "check_in")
        worker = SimpleNamespace(data=SimpleNamespace(train=range(2**41)))
        daemon = daemon_for(server.port, "c1", worker)
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            time.sleep(3.0)
        finally:
            daemon.stop()
            thread.join(10)
            daemon.close()
        # delays >= 0.05 s growing to 0.4 s: about ten in 3 s, not thousands
        assert 2 <= len(check_ins) <= 25, len(check_ins)


def client_cmd(port: int, token: str) -> list[str]:
    return [sys.executable, "-m", "fedclient", "--server", f"127.0.0.1:{port}",
            "--client-id", "c1", "--token", token, "--data-source", "digits",
            "--set", "backoff_initial_s=0.05", "--set", "backoff_max_s=0.2"]


def test_a_refused_token_exits_with_its_own_code_in_one_line(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path / "state", "evaluation.test_set=")) as server:
        proc = subprocess.run(client_cmd(server.port, "wrong-token"), capture_output=True,
                              text=True, timeout=120, check=False)
    assert proc.returncode == EXIT_REFUSED, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    assert f"coordinator 127.0.0.1:{server.port} refused client 'c1': UNAUTHENTICATED" in errors[0]


def test_a_dead_coordinator_is_named_with_the_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "client.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(client_cmd(port, TOKEN), stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: log.read_text().count("unreachable") >= 2, 60, "retries")
    finally:
        proc.terminate()
        proc.wait(30)
    line = next(x for x in log.read_text().splitlines() if "unreachable" in x)
    assert f"coordinator 127.0.0.1:{port} unreachable: UNAVAILABLE: " in line
    assert "retrying in" in line and len(line.split("UNAVAILABLE: ", 1)[1]) > 20  # the reason
