"""Undecodable requests, against a coordinator process over real gRPC: INVALID_ARGUMENT,
no traceback, (rate-limited) warnings only, and flat memory.

Threat model: docs/threat-model.md ("network attacker"). grpcio deserializing requests
itself leaked about 19 KiB per undecodable request and logged a traceback for each; the
coordinator now takes the bytes and parses them after authentication.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedcore.pb import coordinator_pb2 as cpb
from fedserver.request_parsing import MalformedRequest, RequestParser
from tests.helpers import (
    TOKEN,
    RawClient,
    read_json,
    server_config,
    spawn,
    stop,
    wait_for,
    write_config,
)

GARBAGE = b"\xff\xff\xff\xff"  # not a valid protobuf message of any type
REQUESTS = 10_000
RSS_BOUND_KIB = 20 * 1024  # the old leak: ~19 KiB x 10,000 = ~190 MiB


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _metadata(client_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-fedprune-client-id", client_id), ("authorization", f"Bearer {TOKEN}"))


def _garbage_calls(channel: grpc.Channel, count: int, senders: int = 8
                   ) -> set[grpc.StatusCode]:
    """``count`` undecodable check-ins from ``senders`` client ids, each keeping its
    ``network.max_calls_per_client`` (4) calls in flight."""
    call = channel.unary_unary("/fedprune.v1.Coordinator/Round")  # bytes in, bytes out

    def send(sender: int) -> set[grpc.StatusCode]:
        codes, metadata = set(), _metadata(f"flooder-{sender}")
        for _ in range(count // senders // 4):
            futures = [call.future(GARBAGE, metadata=metadata, timeout=30) for _ in range(4)]
            codes.update(f.code() for f in futures)
        return codes

    with ThreadPoolExecutor(max_workers=senders) as pool:
        return set().union(*pool.map(send, range(senders)))


@pytest.mark.timeout(120)
def test_10000_undecodable_requests_keep_rss_flat_and_the_log_quiet(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=",
                           "round.clients_per_round=5", "round.min_clients=5",
                           "round.selection_timeout_s=60")
    log = tmp_path / "server.log"
    proc = spawn("fedserver", write_config(tmp_path / "server.toml", config), log)
    try:
        endpoint = wait_for(lambda: read_json(Path(config.state_dir) / "endpoint.json"), 60,
                            "the endpoint")
        client = RawClient(endpoint["port"])
        metadata = _metadata("flooder-0")
        try:
            assert _garbage_calls(client.channel, 512) == \
                {grpc.StatusCode.INVALID_ARGUMENT}  # warm-up: pools and caches filled
            before = _rss_kib(proc.pid)
            assert _garbage_calls(client.channel, REQUESTS) == \
                {grpc.StatusCode.INVALID_ARGUMENT}
            after = _rss_kib(proc.pid)
            # undecodable pushes and pulls too, and health checks with bad bytes
            push = client.channel.stream_unary("/fedprune.v1.Coordinator/PushUpdate")
            with pytest.raises(grpc.RpcError) as info:
                push(iter([GARBAGE]), metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            check = client.channel.unary_unary("/grpc.health.v1.Health/Check")
            with pytest.raises(grpc.RpcError) as info:
                check(GARBAGE, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # still serving: health and a real check-in
            health = health_pb2_grpc.HealthStub(client.channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
            assert client.round(max_wait_ms=0).kind == cpb.TASK_KIND_WAIT
        finally:
            client.close()
        print(f"coordinator RSS {before} KiB -> {after} KiB after {REQUESTS} undecodable "
              f"requests ({(after - before) / REQUESTS:.3f} KiB/request)")
        assert after - before < RSS_BOUND_KIB, (before, after)
    finally:
        stop([proc])
    text = log.read_text()
    assert "Traceback" not in text and "Exception deserializing" not in text
    warnings = text.count("refused an undecodable")
    assert 1 <= warnings <= 10, warnings  # rate-limited: at most one per 10 s
    assert "\\xff" not in text  # nothing of the bytes is echoed


def test_parser_refuses_with_invalid_argument_type_and_rate_limits_its_warnings(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    parser = RequestParser(interval_s=10, clock=lambda: now[0])
    assert parser(cpb.RoundRequest, cpb.RoundRequest(max_wait_ms=5).SerializeToString()) \
        .max_wait_ms == 5
    with caplog.at_level(logging.WARNING, logger="fedserver.requests"):
        for _ in range(100):
            with pytest.raises(MalformedRequest, match="not a valid RoundRequest"):
                parser(cpb.RoundRequest, GARBAGE)
        now[0] = 11
        with pytest.raises(MalformedRequest):
            parser(cpb.RoundRequest, GARBAGE)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "99 more since the last warning" in messages[1]
    assert parser.malformed == 101
