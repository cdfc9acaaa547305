"""A client that cannot complete its task says why, and the coordinator records it.

Threat model: docs/threat-model.md ("the model stays finite", "malicious or spoofed
coordinator"): a diverged client never pushes NaN/inf; it reports the failure (a
status the coordinator records) instead of exiting.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from fedclient.config import AttackConfig, ClientConfig
from fedclient.daemon import ClientDaemon
from fedclient.local_work import LocalWorker
from fedcore.datasets import DataSpec, load_client_data
from fedcore.pb import coordinator_pb2 as cpb
from tests.helpers import (
    TOKEN,
    RawClient,
    running_server,
    server_config,
    update_for,
    wait_for,
    zero_delta,
)


@pytest.mark.timeout(90)
def test_a_diverged_client_reports_a_non_finite_update_and_never_pushes_it(
        tmp_path: Path) -> None:
    # a client-side "scale" attack of 1e300 overflows every float32 delta to inf: the client
    # must notice before encoding (learning rates are capped at 10, so no config diverges it)
    config = server_config(tmp_path / "state",
                           "training.local_epochs=1", "round.rounds=1", "round.deadline_s=30",
                           "evaluation.test_set=")
    with running_server(config) as running:
        coord = running.coordinator
        pushes = []
        worker = LocalWorker(load_client_data(DataSpec(source="synthetic")),
                             attack=AttackConfig(behaviour="scale", scale=1e300))
        daemon = ClientDaemon(ClientConfig(server=f"127.0.0.1:{running.port}", client_id="c1",
                                           token=TOKEN, max_wait_ms=1000,
                                           backoff_initial_s=0.05, backoff_max_s=0.2),
                              worker=worker)
        real_push = daemon._push
        daemon._push = lambda *a: pushes.append(1) or real_push(*a)  # type: ignore[method-assign]
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: coord.failures.of(1), 60, "the failure report")
            assert coord.failures.of(1) == {"c1": "non_finite_update"}
        finally:
            daemon.stop()
            thread.join(10)
            daemon.close()
        assert not pushes  # nothing was pushed, and the daemon did not crash
        assert not thread.is_alive()
        sample = coord.metrics.registry.get_sample_value(
            "fedprune_client_failures_total", {"reason": "non_finite_update"})
        assert sample == 1.0


def test_failure_reports_are_validated_like_results(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=")
    with running_server(config) as running:
        c1, c2 = RawClient(running.port, "c1"), RawClient(running.port, "c2")
        try:
            task = c1.round()
            report = cpb.TaskFailure(task_id=task.task_id, round=task.round,
                                     reason=cpb.FAILURE_REASON_BAD_MODEL, detail="bad bytes")
            for bad, code in (
                    (cpb.TaskFailure(task_id=task.task_id, round=task.round),
                     grpc.StatusCode.INVALID_ARGUMENT),  # no reason
                    (cpb.TaskFailure(task_id=task.task_id, round=task.round, reason=1,
                                     detail="x" * 301), grpc.StatusCode.INVALID_ARGUMENT),
                    (cpb.TaskFailure(task_id="nope", round=task.round, reason=1),
                     grpc.StatusCode.NOT_FOUND)):
                with pytest.raises(grpc.RpcError) as info:
                    c1.stub.ReportFailure(bad, metadata=c1.metadata, timeout=10)
                assert info.value.code() == code
            with pytest.raises(grpc.RpcError) as info:  # another client's task
                c2.stub.ReportFailure(report, metadata=c2.metadata, timeout=10)
            assert info.value.code() in (grpc.StatusCode.PERMISSION_DENIED,
                                         grpc.StatusCode.NOT_FOUND)
            first = c1.stub.ReportFailure(report, metadata=c1.metadata, timeout=10)
            again = c1.stub.ReportFailure(report, metadata=c1.metadata, timeout=10)
            assert first.accepted and not first.duplicate and again.duplicate
            assert running.coordinator.failures.of(task.round) == {"c1": "bad_model"}
            assert running.coordinator.sm.step.results == {}  # a failure is not a result
        finally:
            c1.close()
            c2.close()


def _both_selected(c1: RawClient, c2: RawClient) -> tuple[cpb.Task, cpb.Task]:
    """Two long-polls at once, so one cohort of two takes both."""
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda c: c.round(max_wait_ms=20000), (c1, c2))
    assert first.kind == second.kind == cpb.TASK_KIND_TRAIN and first.round == second.round
    return first, second


@pytest.mark.timeout(120)
def test_a_round_whose_clients_all_answered_closes_without_waiting_for_its_deadline(
        tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=", "round.rounds=2",
                           "round.clients_per_round=2", "round.min_clients=1",
                           "round.deadline_s=600", "round.selection_timeout_s=30")
    with running_server(config) as running:
        coord = running.coordinator
        c1, c2 = RawClient(running.port, "c1"), RawClient(running.port, "c2")
        try:
            def gave_up(client: RawClient, task: cpb.Task) -> cpb.PushAck:
                return client.stub.ReportFailure(
                    cpb.TaskFailure(task_id=task.task_id, round=task.round,
                                    reason=cpb.FAILURE_REASON_NON_FINITE_UPDATE),
                    metadata=client.metadata, timeout=10)

            # round 1: one result, one failure -> completed at once, on the one result
            t1, t2 = _both_selected(c1, c2)
            assert gave_up(c1, t1).accepted
            with pytest.raises(grpc.RpcError) as info:  # its one answer was the failure
                c1.push_payload(*update_for(t1, zero_delta(c1.pull(t1))))
            assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
            started = time.monotonic()
            assert c2.push_payload(*update_for(t2, zero_delta(c2.pull(t2)))).accepted
            wait_for(lambda: len(coord.store.rounds()) == 1, 10, "round 1 closed")
            first = coord.store.rounds()[0]
            assert (first.status, first.reason, first.clients) == (
                "completed", "every client answered (1 gave up)", ["c2"])
            assert first.measurements["client_failures"] == {"c1": "non_finite_update"}
            # round 2: both give up -> failed at once, the model as it was
            version = coord.model.version
            t1, t2 = _both_selected(c1, c2)
            assert gave_up(c1, t1).accepted and gave_up(c2, t2).accepted
            wait_for(lambda: len(coord.store.rounds()) == 2, 10, "round 2 closed")
            second = coord.store.rounds()[1]
            assert (second.status, second.reason) == (
                "failed", "every client answered: 0 < quorum 1 (2 gave up)")
            assert coord.model.version == version
            assert time.monotonic() - started < 60  # neither waited for its 600 s deadline
            assert gave_up(c2, t2).duplicate  # a repeated report after the close
        finally:
            c1.close()
            c2.close()
