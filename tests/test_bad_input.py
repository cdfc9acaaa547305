"""Bad input over real gRPC: every case gets its precise status and changes nothing."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore.model_codec import model_digest
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import tensor_pb2 as tpb
from fedcore.streaming import make_header
from fedserver.server import RunningServer
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta

SC = grpc.StatusCode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    state = tmp_path_factory.mktemp("state")
    config = server_config(state, "network.max_payload_bytes=2000000",
                           "auth.tokens={\"c1\": \"test-token\", \"c2\": \"t2\"}",
                           "auth.shared_token=")
    with running_server(config) as running:
        yield running


@pytest.fixture(scope="module")
def task(server: RunningServer) -> cpb.Task:
    client = RawClient(server.port)
    task = client.round()
    client.close()
    assert task.kind == cpb.TASK_KIND_TRAIN
    return task


@pytest.fixture()
def client(server: RunningServer) -> Iterator[RawClient]:
    c = RawClient(server.port)
    yield c
    c.close()


@pytest.fixture()
def unchanged(server: RunningServer) -> Iterator[None]:
    """The global model and the round must be exactly as before the bad call."""
    coord = server.coordinator
    before = (model_digest(coord.model.params), coord.model.version, dict(coord.sm.step.results))
    yield
    after = (model_digest(coord.model.params), coord.model.version, dict(coord.sm.step.results))
    assert after == before


def expect(code: grpc.StatusCode, call, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        call(*args)
    assert exc.value.code() == code, exc.value.details()
    return str(exc.value.details())


def delta_of(client: RawClient, task: cpb.Task) -> dict[str, np.ndarray]:
    return zero_delta(client.pull(task))


def test_missing_credentials_unauthenticated(server: RunningServer, unchanged: None) -> None:
    stub = RawClient(server.port).stub
    expect(SC.UNAUTHENTICATED, stub.Round, cpb.RoundRequest(max_wait_ms=100))


def test_bad_token_unauthenticated(server: RunningServer, unchanged: None) -> None:
    bad = RawClient(server.port, "c1", token="wrong")
    expect(SC.UNAUTHENTICATED, bad.round)


def test_unknown_client_permission_denied(server: RunningServer, unchanged: None) -> None:
    stranger = RawClient(server.port, "mallory", token="test-token")
    expect(SC.PERMISSION_DENIED, stranger.round)


def test_unknown_task_not_found(client: RawClient, task: cpb.Task, unchanged: None) -> None:
    header, data = update_for(task, delta_of(client, task), task_id="run/r9/train/c1")
    expect(SC.NOT_FOUND, client.push_payload, header, data)
    bogus = cpb.Task(task_id="nope")
    expect(SC.NOT_FOUND, client.pull, bogus)


def test_other_clients_task_permission_denied(server: RunningServer, task: cpb.Task,
                                              unchanged: None) -> None:
    other = RawClient(server.port, "c2", token="t2")
    header, data = update_for(task, delta_of(RawClient(server.port), task))
    expect(SC.PERMISSION_DENIED, other.push_payload, header, data)


@pytest.mark.parametrize("field,value", [("round", 7), ("model_version", 5), ("mask_id", "m1")])
def test_wrong_round_version_mask_failed_precondition(client: RawClient, task: cpb.Task,
                                                      field: str, value: object,
                                                      unchanged: None) -> None:
    header, data = update_for(task, delta_of(client, task), **{field: value})
    expect(SC.FAILED_PRECONDITION, client.push_payload, header, data)


def test_shape_mismatch_invalid_argument(client: RawClient, task: cpb.Task,
                                         unchanged: None) -> None:
    delta = delta_of(client, task)
    name = next(iter(delta))
    delta[name] = np.zeros((3, 3), dtype=np.float32)
    header, data = update_for(task, delta)
    assert "shape" in expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_missing_tensor_invalid_argument(client: RawClient, task: cpb.Task,
                                         unchanged: None) -> None:
    delta = delta_of(client, task)
    delta.pop(next(iter(delta)))
    header, data = update_for(task, delta)
    expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_invalid_argument(client: RawClient, task: cpb.Task, bad: float,
                                            unchanged: None) -> None:
    delta = delta_of(client, task)
    payload = update_for(task, delta)[1]
    msg = cpb.UpdatePayload.FromString(payload)
    # Forge a raw fp32 tensor with a non-finite value (the encoder itself refuses them).
    t = msg.delta.tensors[0]
    forged = np.frombuffer(t.values.raw.data.data, dtype="<f4").copy()
    forged[0] = bad
    t.values.raw.data.CopyFrom(tpb.Blob(data=forged.tobytes(), raw_size=forged.nbytes))
    t.crc32 = zlib.crc32(forged.tobytes())
    data = msg.SerializeToString()
    header, _ = update_for(task, delta, stream=make_header(data))
    assert "finite" in expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_malformed_tensor_payload_invalid_argument(client: RawClient, task: cpb.Task,
                                                   unchanged: None) -> None:
    delta = delta_of(client, task)
    msg = cpb.UpdatePayload.FromString(update_for(task, delta)[1])
    msg.delta.tensors[1].values.raw.data.data = b"\x01\x02\x03"  # truncated, CRC now wrong
    data = msg.SerializeToString()
    header, _ = update_for(task, delta, stream=make_header(data))
    expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_garbage_payload_invalid_argument(client: RawClient, task: cpb.Task,
                                          unchanged: None) -> None:
    data = b"\xff\xfe not a protobuf \x00" * 10
    header, _ = update_for(task, delta_of(client, task), stream=make_header(data))
    expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_digest_mismatch_invalid_argument(client: RawClient, task: cpb.Task,
                                          unchanged: None) -> None:
    header, data = update_for(task, delta_of(client, task))
    header.stream.sha256 = bytes(32)
    expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_oversized_update_resource_exhausted(client: RawClient, task: cpb.Task,
                                             unchanged: None) -> None:
    header, data = update_for(task, delta_of(client, task))
    header.stream.total_bytes = 50_000_000  # announced size over max_payload_bytes
    assert "exceeds" in expect(SC.RESOURCE_EXHAUSTED, client.push_payload, header, data)


def test_oversized_grpc_message_resource_exhausted(client: RawClient, task: cpb.Task,
                                                   unchanged: None) -> None:
    huge = cpb.RoundRequest(client_version="x" * (5 << 20))
    expect(SC.RESOURCE_EXHAUSTED, client.stub.Round, huge, None, client.metadata)


def test_header_must_come_first(client: RawClient, task: cpb.Task, unchanged: None) -> None:
    def chunks() -> Iterator[cpb.UpdateChunk]:
        yield cpb.UpdateChunk(data=b"abc")
    expect(SC.INVALID_ARGUMENT, client.stub.PushUpdate, chunks(), None, client.metadata)


def test_bad_num_examples_invalid_argument(client: RawClient, task: cpb.Task,
                                           unchanged: None) -> None:
    header, data = update_for(task, delta_of(client, task), num_examples=0)
    expect(SC.INVALID_ARGUMENT, client.push_payload, header, data)


def test_bad_held_model_digest_invalid_argument(client: RawClient, task: cpb.Task,
                                                unchanged: None) -> None:
    """A held digest that is not a SHA-256 is refused before any task is assigned."""
    for call, request in (
            (client.stub.Round, cpb.RoundRequest(max_wait_ms=100, num_examples=10,
                                                 held_model_digest=b"short")),
            (lambda r, **kw: list(client.stub.PullModel(r, **kw)),
             cpb.PullModelRequest(task_id=task.task_id, held_model_digest=b"x" * 33))):
        with pytest.raises(grpc.RpcError) as exc:
            call(request, metadata=client.metadata, timeout=30)
        assert exc.value.code() == SC.INVALID_ARGUMENT
        assert "held_model_digest" in str(exc.value.details())


def test_retried_push_counted_once_then_conflict(server: RunningServer, tmp_path: Path) -> None:
    """Runs last in this module: it completes round 1 with one good update."""
    client = RawClient(server.port)
    task = client.round()
    coord = server.coordinator
    version = coord.model.version
    delta = {k: np.full_like(v, 0.01) for k, v in delta_of(client, task).items()}
    header, data = update_for(task, delta)
    first = client.push_payload(header, data)
    assert first.accepted and not first.duplicate
    assert coord.model.version == version + 1  # one client per round: the round closed
    again = client.push_payload(header, data)  # a retry whose ack was lost: counted once
    assert again.accepted and again.duplicate
    other_header, other = update_for(task, {k: v * 2 for k, v in delta.items()})
    expect(SC.DEADLINE_EXCEEDED, client.push_payload, other_header, other)
    assert coord.model.version == version + 1
