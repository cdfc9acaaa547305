"""The server does what the .proto's contract comments say (real gRPC, in-process server)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore.model_codec import Encoding
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.streaming import CHUNK_BYTES, PayloadAssembler, StreamError
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta


def random_delta(task: cpb.Task, client: RawClient) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.normal(0, 0.01, v.shape).astype(np.float32)
            for k, v in zero_delta(client.pull(task)).items()}


@pytest.mark.parametrize(("wire", "refused", "accepted", "message"), [
    (("wire.uplink=int8",), Encoding("fp32"), Encoding("int8"),
     "uses fp32 values, the task asked for int8"),
    (("wire.uplink=fp16",), Encoding("int4"), Encoding("fp16", zstd=True),
     "uses int4 values, the task asked for fp16"),
    (("wire.uplink=clustered", "wire.clusters=4"), Encoding("clustered", clusters=16),
     Encoding("clustered", clusters=4), "has 16 clusters, the task asked for at most 4"),
])
def test_the_requested_value_codec_is_binding(tmp_path: Path, wire: tuple[str, ...],
                                              refused: Encoding, accepted: Encoding,
                                              message: str) -> None:
    config = server_config(tmp_path / "state", "evaluation.test_set=", *wire)
    with running_server(config) as server:
        client = RawClient(server.port)
        try:
            task = client.round()
            delta = random_delta(task, client)
            with pytest.raises(grpc.RpcError) as info:
                client.push_payload(*update_for(task, delta, encoding=refused))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in info.value.details()
            assert server.coordinator.model.version == 0
            assert client.push_payload(*update_for(task, delta, encoding=accepted)).accepted
        finally:
            client.close()


def test_a_chunk_above_one_mib_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match="chunk limit"):
        header = cpb.StreamHeader(total_bytes=CHUNK_BYTES + 1, sha256=b"\0" * 32)
        PayloadAssembler(header, max_bytes=1 << 30).add(b"\0" * (CHUNK_BYTES + 1))
    config = server_config(tmp_path / "state", "evaluation.test_set=")
    with running_server(config) as server:
        client = RawClient(server.port)
        try:
            task = client.round()
            big = b"\1" * int(2.3 * (1 << 20))
            header, _ = update_for(task, zero_delta(client.pull(task)))
            header.stream.CopyFrom(cpb.StreamHeader(total_bytes=len(big),
                                                    sha256=hashlib.sha256(big).digest()))

            def chunks() -> Iterator[cpb.UpdateChunk]:
                yield cpb.UpdateChunk(header=header)
                yield cpb.UpdateChunk(data=big)

            with pytest.raises(grpc.RpcError) as info:
                client.stub.PushUpdate(chunks(), metadata=client.metadata, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "chunk limit" in info.value.details()
        finally:
            client.close()


def test_wait_carries_a_real_retry_after_when_the_call_was_not_held(tmp_path: Path) -> None:
    """max_wait_ms = 0 must not turn a literal client into a busy loop."""
    config = server_config(tmp_path / "state", "evaluation.test_set=",
                           "round.clients_per_round=2", "round.min_clients=2")
    with running_server(config) as server:
        client = RawClient(server.port)
        try:
            immediate = client.round(max_wait_ms=0)
            assert immediate.kind == cpb.TASK_KIND_WAIT
            assert 500 < immediate.retry_after_ms <= 1000
            held = client.round(max_wait_ms=1100)  # a real long-poll of >= 1 s
            assert held.kind == cpb.TASK_KIND_WAIT and held.retry_after_ms == 0
        finally:
            client.close()
