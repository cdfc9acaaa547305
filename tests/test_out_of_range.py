"""Out-of-range integers over real gRPC: a precise status, never UNKNOWN (e.g. an SQLite
overflow at 2^63), and nothing changes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fedcore.model_codec import model_digest
from fedcore.pb import coordinator_pb2 as cpb
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta

SC = grpc.StatusCode
HUGE = (2**40 + 1, 2**63 - 1, 2**63, 2**64 - 1)


def code_of(call, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        call(*args, **kwargs)
    return exc.value.code()


def test_out_of_range_integers_are_refused_precisely(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=")
    with running_server(config) as server:
        coord = server.coordinator
        client = RawClient(server.port)
        try:
            before = (model_digest(coord.model.params), coord.model.version)
            for n in HUGE:
                assert code_of(client.stub.Round,
                               cpb.RoundRequest(max_wait_ms=10, num_examples=n),
                               metadata=client.metadata, timeout=10) == SC.INVALID_ARGUMENT
            assert code_of(client.stub.Round,
                           cpb.RoundRequest(max_wait_ms=2**32 - 1, num_examples=2**63),
                           metadata=client.metadata, timeout=10) == SC.INVALID_ARGUMENT
            task = client.round()
            delta = zero_delta(client.pull(task))
            for n in HUGE:
                assert code_of(client.push_payload,
                               *update_for(task, delta, num_examples=n)) == SC.INVALID_ARGUMENT
                assert code_of(client.stub.ReportEvaluation,
                               cpb.EvaluationReport(task_id=task.task_id, round=task.round,
                                                    num_examples=n),
                               metadata=client.metadata, timeout=10) == SC.INVALID_ARGUMENT
            for field in ("round", "model_version"):
                for n in (2**63, 2**64 - 1):
                    assert code_of(client.push_payload, *update_for(task, delta, **{field: n})
                                   ) == SC.FAILED_PRECONDITION
            assert code_of(client.stub.Step, cpb.StepRequest(task_id=task.task_id, round=2**64 - 1),
                           metadata=client.metadata, timeout=10) == SC.FAILED_PRECONDITION
            assert (model_digest(coord.model.params), coord.model.version) == before
            assert client.push_payload(*update_for(task, delta)).accepted  # still open
        finally:
            client.close()
