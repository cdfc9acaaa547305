"""A client that cannot complete its task says why, and the coordinator records it.

Threat model: docs/threat-model.md ("the model stays finite", "malicious or spoofed
coordinator"): a diverged client never pushes NaN/inf; it reports the failure (a
status the coordinator records) instead of exiting.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from fedclient.config import AttackConfig, ClientConfig
from fedclient.daemon import ClientDaemon
from fedclient.local_work import LocalWorker
from fedcore.datasets import DataSpec, load_client_data
from fedcore.pb import coordinator_pb2 as cpb
from tests.helpers import TOKEN, RawClient, running_server, server_config, wait_for


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
