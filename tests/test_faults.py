"""Failures with real processes over loopback gRPC: SIGKILL a client, SIGKILL the coordinator."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from fedclient.config import ClientConfig
from fedcore.datasets import DataSpec
from tests.helpers import (
    TOKEN,
    read_json,
    server_config,
    spawn,
    stop,
    wait_for,
    with_port,
    write_config,
)

pytestmark = pytest.mark.slow


def client_config(port: int, i: int, n: int, *, name: str = "", **data: object) -> ClientConfig:
    spec = DataSpec(**{"source": "digits", "partition": i, "num_partitions": n, **data})  # type: ignore[arg-type]
    return ClientConfig(server=f"127.0.0.1:{port}", client_id=name or f"client-{i}", token=TOKEN,
                        backoff_initial_s=0.05, backoff_max_s=0.5, data=spec)


def start_clients(tmp: Path, port: int, n: int) -> list:  # type: ignore[type-arg]
    """n digits clients, partition i of n each, logging to tmp/c<i>.log."""
    return [spawn("fedclient", write_config(tmp / f"c{i}.toml", client_config(port, i, n)),
                  tmp / f"c{i}.log") for i in range(n)]


def start_server(tmp: Path, *overrides: str, port: int = 0):  # type: ignore[no-untyped-def]
    config = with_port(server_config(tmp / "state", *overrides), port)
    path = write_config(tmp / "server.toml", config)
    proc = spawn("fedserver", path, tmp / "server.log")
    endpoint = wait_for(lambda: read_json(tmp / "state" / "endpoint.json"), 60, "endpoint")
    return proc, int(endpoint["port"])


def rounds_in(state: Path) -> list[dict]:  # type: ignore[type-arg]
    report = read_json(state / "report.json")
    return report["rounds"] if report else []


def _committed_rounds(state: Path) -> int:
    if not (state / "fedprune.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state / 'fedprune.sqlite'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_client_mid_round_completes_by_deadline(tmp_path: Path) -> None:
    deadline = 10
    server, port = start_server(tmp_path, "round.rounds=2", "round.clients_per_round=3",
                                "round.min_clients=2", f"round.deadline_s={deadline}",
                                "round.selection_timeout_s=60")
    procs = [server]
    try:
        procs += start_clients(tmp_path, port, 2)
        # The victim has more local data, so it is still training when it is killed.
        victim_cfg = client_config(port, 0, 1, name="client-2", source="synthetic",
                                   synthetic_samples=20000)
        victim_log = tmp_path / "victim.log"
        victim = spawn("fedclient", write_config(tmp_path / "victim.toml", victim_cfg), victim_log)
        procs.append(victim)
        wait_for(lambda: "round 2: training" in victim_log.read_text(), 120,
                 "the victim to start round 2", interval=0.02)
        victim.send_signal(signal.SIGKILL)
        assert server.wait(90) == 0
        rounds = rounds_in(tmp_path / "state")
        assert [r["status"] for r in rounds] == ["completed"] * 2
        assert rounds[0]["accepted"] == 3
        r2 = rounds[1]
        assert r2["selected"] == 3 and r2["accepted"] == 2 and r2["reason"] == "deadline"
        assert "client-2" not in r2["clients"]
        assert r2["closed"] - r2["started"] <= deadline + 2.0
        for p in procs[1:3]:
            assert p.wait(30) == 0  # the surviving clients got SHUTDOWN
    finally:
        stop(procs)


def test_sigkill_coordinator_resumes_from_last_completed_round(tmp_path: Path) -> None:
    total = 10
    args = (f"round.rounds={total}", "round.clients_per_round=3", "round.min_clients=3",
            "round.selection_timeout_s=30")
    server, port = start_server(tmp_path, *args)
    clients = []
    try:
        clients = start_clients(tmp_path, port, 3)
        state = tmp_path / "state"
        wait_for(lambda: len(rounds_in(state)) >= 2, 120, "two rounds", interval=0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        with sqlite3.connect(state / "fedprune.sqlite") as db:
            last = db.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
        assert 2 <= last < total, "the kill must land mid-run"
        (state / "endpoint.json").unlink()
        server, _ = start_server(tmp_path, *args, port=port)
        assert server.wait(120) == 0
        log = (tmp_path / "server.log").read_text()
        assert f"starting at round {last + 1} (model version {last}" in log
        rounds = rounds_in(state)
        assert [r["round"] for r in rounds] == list(range(1, total + 1))
        assert all(r["status"] == "completed" and r["version"] == r["round"] for r in rounds)
        for c in clients:  # never restarted: they rode out the outage by themselves
            assert c.wait(30) == 0
    finally:
        stop([server, *clients])


def test_sigterm_stops_daemons_cleanly_and_the_run_resumes(tmp_path: Path) -> None:
    args = ("round.rounds=30", "round.clients_per_round=2", "round.min_clients=2",
            "network.grace_s=1")
    server, port = start_server(tmp_path, *args)
    clients = []
    try:
        clients = start_clients(tmp_path, port, 2)
        state = tmp_path / "state"
        wait_for(lambda: len(rounds_in(state)) >= 2, 120, "two rounds")
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(15) == 0 and time.monotonic() - started < 10
        done = len(rounds_in(state))
        assert "shutting down" in (tmp_path / "server.log").read_text()
        (state / "endpoint.json").unlink()
        server, _ = start_server(tmp_path, *args, port=port)
        wait_for(lambda: len(rounds_in(state)) > done + 1, 60, "rounds after the restart")
        rounds = rounds_in(state)
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        for c in clients:
            c.send_signal(signal.SIGTERM)
        for c in clients:
            assert c.wait(15) == 0
        assert "stopped" in (tmp_path / "c0.log").read_text()
    finally:
        stop([server, *clients])
