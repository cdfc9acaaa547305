"""Pre-authentication and idle-call denial of service, over real gRPC.

Threat model: docs/threat-model.md ("network attacker", "malicious clients").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from fedcore.pb import coordinator_pb2 as cpb
from fedcore.streaming import MAX_EMPTY_CHUNKS
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta

REFLECTION = {"v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}


def _reflection(channel: grpc.Channel, version: str) -> grpc.StreamStreamMultiCallable:
    return channel.stream_stream(
        REFLECTION[version],
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status


def test_reflection_is_off_by_default_and_serves_v1_when_on(tmp_path: Path) -> None:
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    with running_server(server_config(tmp_path / "a")) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        try:
            next(_reflection(channel, "v1alpha")(iter([ask]), timeout=5))
            raise AssertionError("reflection answered while off")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
    with running_server(server_config(tmp_path / "b", "network.reflection=true")) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        for version in REFLECTION:
            reply = next(_reflection(channel, version)(iter([ask]), timeout=5))
            names = {s.name for s in reply.list_services_response.service}
            assert "fedprune.v1.Coordinator" in names and "grpc.reflection.v1.ServerReflection" \
                in names, version


def test_64_idle_reflection_and_push_streams_leave_health_and_rounds_answering(
        tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "network.reflection=true",
                           "network.stream_idle_s=2")
    release = threading.Event()

    def idle() -> Iterator[object]:
        release.wait(60)
        yield from ()

    with running_server(config) as running:
        attacker = RawClient(running.port, client_id="attacker")
        honest = RawClient(running.port, client_id="honest")
        try:
            started = time.monotonic()
            pushes = [attacker.stub.PushUpdate.future(idle(), metadata=attacker.metadata,
                                                      timeout=30) for _ in range(64)]
            codes: list[grpc.StatusCode] = []

            def reflect() -> None:
                try:
                    for _ in _reflection(attacker.channel, "v1alpha")(idle(), timeout=30):
                        pass
                except grpc.RpcError as exc:
                    codes.append(exc.code())

            readers = [threading.Thread(target=reflect, daemon=True) for _ in range(64)]
            for t in readers:
                t.start()
            time.sleep(0.5)
            assert _health(honest.channel) == health_pb2.HealthCheckResponse.SERVING
            task = honest.round()
            assert task.kind == cpb.TASK_KIND_TRAIN
            assert honest.pull(task).model.tensors
            # the stream slots are refused at once or freed by the read deadline
            codes += [f.exception().code() for f in pushes]  # type: ignore[union-attr]
            for t in readers:
                t.join(20)
            assert len(codes) == 128
            assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
            assert codes.count(grpc.StatusCode.CANCELLED) <= config.network.open_streams_limit
            assert time.monotonic() - started < 15  # idle 2 s, reaper period 0.5 s
            assert _health(honest.channel) == health_pb2.HealthCheckResponse.SERVING
        finally:
            release.set()
            attacker.close()
            honest.close()


def test_status_details_clip_client_supplied_strings(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path / "state")) as running:
        client = RawClient(running.port)
        try:
            client.round()
            stream = client.stub.PullModel(cpb.PullModelRequest(task_id="x" * 3_000_000),
                                           metadata=client.metadata, timeout=10)
            try:
                next(stream)
                raise AssertionError("an unknown task id was served")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                assert len(exc.details()) <= 400, len(exc.details())
        finally:
            client.close()


def test_push_stream_of_empty_chunks_is_refused_after_a_few(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path / "state", "evaluation.test_set=")) as running:
        client = RawClient(running.port)
        try:
            task = client.round()
            header, data = update_for(task, zero_delta(client.pull(task)))

            def chunks() -> Iterator[cpb.UpdateChunk]:
                yield cpb.UpdateChunk(header=header)
                for _ in range(MAX_EMPTY_CHUNKS + 1):
                    yield cpb.UpdateChunk(data=b"")
                yield cpb.UpdateChunk(data=data)

            try:
                client.stub.PushUpdate(chunks(), metadata=client.metadata, timeout=10)
                raise AssertionError("a stream of empty chunks was accepted")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "empty chunks" in exc.details()
            # the update itself, sent properly (a few empty chunks are tolerated), is taken
            def few_empty() -> Iterator[cpb.UpdateChunk]:
                yield cpb.UpdateChunk(header=header)
                yield cpb.UpdateChunk(data=b"")
                yield cpb.UpdateChunk(data=data)

            assert client.stub.PushUpdate(few_empty(), metadata=client.metadata,
                                          timeout=10).accepted
        finally:
            client.close()


def test_a_push_waits_for_a_stream_slot_up_to_stream_slot_wait_s(tmp_path: Path) -> None:
    """One slot, held by a silent stream until its read deadline (1 s) reaps it: an honest
    push queued behind it is taken when the slot frees if it may wait longer than that
    (``network.stream_slot_wait_s``), and refused with RESOURCE_EXHAUSTED if not."""
    release = threading.Event()

    def silent() -> Iterator[object]:
        release.wait(30)
        yield from ()

    for wait_s, accepted in ((5.0, True), (0.3, False)):
        config = server_config(tmp_path / f"state-{wait_s}", "evaluation.test_set=",
                               "network.max_open_streams=1", "network.stream_idle_s=1",
                               f"network.stream_slot_wait_s={wait_s}")
        with running_server(config) as running:
            holder, honest = RawClient(running.port, "holder"), RawClient(running.port, "c1")
            try:
                task = honest.round()
                update = update_for(task, zero_delta(honest.pull(task)))
                held = holder.stub.PushUpdate.future(silent(), metadata=holder.metadata,
                                                     timeout=20)
                time.sleep(0.3)  # the silent stream has the slot
                if accepted:
                    assert honest.push_payload(*update).accepted
                else:
                    with pytest.raises(grpc.RpcError) as info:
                        honest.push_payload(*update)
                    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "streams open" in (info.value.details() or "")
                assert held.exception().code() == grpc.StatusCode.CANCELLED  # reaped
            finally:
                release.set()
                holder.close()
                honest.close()
        release.clear()
