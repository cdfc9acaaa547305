"""The Prometheus endpoint, scraped while a run goes on (real gRPC, in-process server)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_endpoint_counts_rounds_updates_bytes_and_clients(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=", "round.rounds=3",
                           "network.metrics_port=0")
    with running_server(config) as server:
        assert server.metrics is not None
        port = server.metrics.port
        before = scrape(port)
        assert before['fedprune_rounds_total{status="completed"}'] == 0
        assert before["fedprune_waiting_clients"] == 0
        client = RawClient(server.port)
        try:
            for _ in range(2):
                task = client.round()
                assert scrape(port)["fedprune_active_clients"] == 1  # selected, no result yet
                delta = {k: np.full_like(v, 0.01) for k, v in zero_delta(client.pull(task)).items()}
                header, data = update_for(task, delta)
                assert client.push_payload(header, data).accepted
                assert client.push_payload(header, data).duplicate  # a retry, counted once
                other = {k: v * 2 for k, v in delta.items()}
                with pytest.raises(grpc.RpcError):  # the step closed: refused as late
                    client.push_payload(*update_for(task, other))
        finally:
            client.close()
        m = scrape(port)
    assert m['fedprune_rounds_total{status="completed"}'] == 2
    assert m['fedprune_rounds_total{status="failed"}'] == 0
    assert m["fedprune_model_version"] == 2
    assert m['fedprune_updates_total{code="OK",result="accepted"}'] == 2
    assert m['fedprune_updates_total{code="OK",result="duplicate"}'] == 2
    assert m['fedprune_updates_total{code="DEADLINE_EXCEEDED",result="rejected"}'] == 2
    assert m['fedprune_wire_bytes_total{direction="up"}'] > 0
    assert m['fedprune_wire_bytes_total{direction="down"}'] > 0
    assert m['fedprune_phase_seconds_count{kind="train"}'] == 2
    assert m["fedprune_active_clients"] == 0


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path / "state", "evaluation.test_set=")) as server:
        assert server.metrics is None


@pytest.mark.parametrize("key", ["network.port", "network.metrics_port"])
def test_a_taken_port_is_one_line_naming_the_key(tmp_path: Path, key: str) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "network.metrics_port=0" if key == "network.port" else "network.port=0"
        proc = subprocess.run(
            [sys.executable, "-m", "fedserver", "--state-dir", str(tmp_path / "state"),
             "--set", "auth.shared_token=t", "--set", "evaluation.test_set=",
             "--set", f"{key}={port}", "--set", other],
            capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "fedserver: error" in line]
    assert len(errors) == 1 and f"{key}: cannot bind 127.0.0.1:{port}" in errors[0]


def test_every_refused_call_is_counted_by_method_and_code_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from fedcore.pb import coordinator_pb2 as cpb

    config = server_config(tmp_path / "state", "evaluation.test_set=", "network.metrics_port=0")
    with running_server(config) as server, caplog.at_level(logging.WARNING,
                                                           logger="fedserver.rejections"):
        assert server.metrics is not None
        intruder, client = RawClient(server.port, token="wrong"), RawClient(server.port)
        try:
            for _ in range(5):  # a misconfigured client retrying
                with pytest.raises(grpc.RpcError) as info:
                    intruder.round(max_wait_ms=100)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as info:
                    client.pull(cpb.Task(task_id="no-such-task"))
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            intruder.close()
            client.close()
        m = scrape(server.metrics.port)
    assert m['fedprune_rpc_rejections_total{code="UNAUTHENTICATED",method="Round"}'] == 5
    assert m['fedprune_rpc_rejections_total{code="NOT_FOUND",method="PullModel"}'] == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "fedserver.rejections"]
    assert len(lines) == 2, lines  # one per cause, not one per call
    assert lines[0].startswith("refused Round with UNAUTHENTICATED (AuthError): bad token")
    assert "wrong" not in " ".join(lines)  # the token never reaches the log


def test_a_repeated_cause_is_logged_again_after_the_interval_with_its_count(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from prometheus_client import CollectorRegistry

    from fedserver.rejection_log import RejectionLog

    now = [0.0]
    log = RejectionLog(registry=CollectorRegistry(), every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="fedserver.rejections"):
        for t in (0, 1, 2, 30, 61, 62):
            now[0] = t
            log.rejected(method="PushUpdate", code="DEADLINE_EXCEEDED", kind="late", detail="x")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1].endswith("(3 more since the last line)")
