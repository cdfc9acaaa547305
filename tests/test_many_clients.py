"""Many lightweight clients against one coordinator at default network settings.

The coordinator serves calls on grpc.aio: a waiting long-poll holds no thread, and a state
change rings only the waiters it concerns, so a round of C clients costs O(C) polls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import grpc
import pytest

from bench.scale_clients import drive
from fedcore.pb import coordinator_pb2 as cpb
from tests.helpers import TOKEN, RawClient, running_server, server_config

CLIENTS = 120


def test_120_lightweight_clients_complete_a_round_with_default_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # default transport settings; only the shared-token mode's cap on new ids per minute
    # (a Sybil defence, 100 by default) is lifted for a known population of 120
    config = server_config(tmp_path / "state", "evaluation.test_set=", "round.rounds=1",
                           f"round.clients_per_round={CLIENTS}", f"round.min_clients={CLIENTS}",
                           "round.selection_timeout_s=60", "round.deadline_s=60",
                           "auth.max_new_clients=0")
    with running_server(config) as server:
        polls: list[str] = []
        poll = server.coordinator._poll

        def counted(client_id: str) -> object:
            polls.append(client_id)
            return poll(client_id)
        monkeypatch.setattr(server.coordinator, "_poll", counted)
        peak_threads = [threading.active_count()]

        async def run() -> object:
            async def sample() -> None:
                while True:
                    peak_threads[0] = max(peak_threads[0], threading.active_count())
                    await asyncio.sleep(0.05)
            sampler = asyncio.create_task(sample())
            try:
                return await drive(f"127.0.0.1:{server.port}",
                                   [f"c{i}" for i in range(CLIENTS)], token=TOKEN,
                                   call_timeout_s=60)
            finally:
                sampler.cancel()
        started = time.monotonic()
        stats = asyncio.run(run())
        assert stats.done == CLIENTS, stats.calls  # type: ignore[attr-defined]
        assert set(stats.calls) == {"Round OK", "PullModel OK", "PushUpdate OK"}  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while server.coordinator.model.version != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.coordinator.model.version == 1
        record = server.coordinator.store.rounds()[0]
        assert record.status == "completed" and record.accepted == CLIENTS
        assert time.monotonic() - started < 20
    # one poll on arrival, one when the selection rings the client (a few may re-poll)
    assert len(polls) <= 3 * CLIENTS, len(polls)
    assert peak_threads[0] < 40, peak_threads  # a thread per waiter would be > CLIENTS


def test_calls_past_the_limit_are_refused_counted_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=",
                           "network.max_concurrent_rpcs=16", "network.max_open_streams=8",
                           "round.clients_per_round=100", "round.min_clients=100")
    caplog.set_level(logging.WARNING, logger="fedserver.admission")
    with running_server(config) as server:
        clients = [RawClient(server.port, f"c{i}") for i in range(24)]
        try:
            calls = [c.stub.Round.future(cpb.RoundRequest(max_wait_ms=3000, num_examples=10),
                                         metadata=c.metadata, timeout=30) for c in clients]
            codes = []
            for call in calls:
                try:
                    codes.append(call.result().kind and grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
        finally:
            for c in clients:
                c.close()
        refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert refused >= 24 - 16 and codes.count(grpc.StatusCode.OK) == 24 - refused, codes
        sample = server.coordinator.metrics.registry.get_sample_value(
            "fedprune_rejected_calls_total",
            {"method": "/fedprune.v1.Coordinator/Round", "code": "RESOURCE_EXHAUSTED"})
        assert sample == refused
    assert any("max_concurrent_rpcs = 16" in r.getMessage() for r in caplog.records)


def test_uniform_population_selection_over_grpc(tmp_path: Path) -> None:
    """30 clients register; the draw takes 10 of the population (not the first 10 to
    wait), those train, and the other 20 are told SHUTDOWN when the run ends."""
    config = server_config(tmp_path / "state", "evaluation.test_set=", "round.rounds=1",
                           "round.clients_per_round=10", "round.min_clients=10",
                           "round.selection=uniform", "round.population=30",
                           "round.selection_timeout_s=60", "round.deadline_s=60")
    with running_server(config) as server:
        stats = asyncio.run(drive(f"127.0.0.1:{server.port}", [f"c{i}" for i in range(30)],
                                  token=TOKEN, call_timeout_s=60))
        record = server.coordinator.store.rounds()[0]
    assert stats.done == 10 and record.status == "completed" and record.selected == 10
    assert stats.calls["PushUpdate OK"] == 10 and stats.calls["Round OK"] >= 30
    assert set(record.clients) <= {f"c{i}" for i in range(30)}
