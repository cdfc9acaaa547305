"""Secure aggregation through the real gRPC server, driven step by step by the test."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore.config import load as load_config
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import ring
from fedcore.secagg.client_session import ClientSession
from fedcore.secagg.coordinates import KeptCoordinates
from fedcore.secagg.keys import RoundContext
from fedserver.aggregators.base import find_key
from fedserver.config import ServerConfig
from tests.helpers import RawClient, running_server, server_config, update_for, zero_delta

SECAGG = ("secagg.enabled=true", "secagg.threshold=2", "secagg.value_bits=12",
          "secagg.clip_range=1.9990234375",  # L / clip = 2047 / (2047/1024): scale 1024 exactly
          "secagg.step_deadline_s=20", "round.clients_per_round=2", "round.min_clients=2",
          "evaluation.test_set=", "round.rounds=2")


def code_of(call, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        call(*args, **kwargs)
    return exc.value.code()


class StepClient(RawClient):
    def step(self, task: cpb.Task, payload: bytes, **fields: object) -> cpb.StepAck:
        request = cpb.StepRequest(task_id=task.task_id, round=task.round, kind=task.kind,
                                  payload=payload)
        for k, v in fields.items():
            setattr(request, k, v)
        return self.stub.Step(request, metadata=self.metadata, timeout=10)


def _both(clients: list[StepClient]) -> list[cpb.Task]:
    tasks: list[cpb.Task | None] = [None, None]

    def poll(i: int) -> None:
        tasks[i] = clients[i].round()

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tasks  # type: ignore[return-value]


def test_a_secure_round_over_grpc_and_the_refusals_of_replayed_or_reordered_steps(
        tmp_path: Path) -> None:
    config = server_config(tmp_path / "s", *SECAGG)
    with running_server(config) as server:
        clients = [StepClient(server.port, f"c{i}") for i in range(2)]
        try:
            tasks = _both(clients)
            assert [t.kind for t in tasks] == [cpb.TASK_KIND_ADVERTISE_KEYS] * 2
            setup = spb.SecAggSetup.FromString(tasks[0].step.payload)
            assert tasks[0].step.protocol == "secagg/1" and tasks[0].step.threshold == 2
            assert setup.ring_bits == 12 + 1 and setup.vector_length > 0
            ctx = RoundContext(tasks[0].run_id, 1)
            sessions = [ClientSession(context=ctx, client_id=f"c{i}", setup=setup)
                        for i in range(2)]
            keys0 = sessions[0].advertise().SerializeToString()
            # out of order: a SHARE_KEYS answer to the ADVERTISE_KEYS task
            assert code_of(clients[0].step, tasks[0], b"", kind=cpb.TASK_KIND_SHARE_KEYS
                           ) == grpc.StatusCode.FAILED_PRECONDITION
            assert code_of(clients[0].step, tasks[0], b"\xff\x01garbage"
                           ) == grpc.StatusCode.INVALID_ARGUMENT
            assert code_of(clients[1].step, tasks[0], keys0) == grpc.StatusCode.PERMISSION_DENIED
            assert code_of(clients[0].push_payload, *update_for(tasks[0], {})
                           ) == grpc.StatusCode.FAILED_PRECONDITION  # no plaintext push
            assert clients[0].step(tasks[0], keys0).accepted
            assert clients[0].step(tasks[0], keys0).duplicate  # an identical retry
            assert code_of(clients[0].step, tasks[0], sessions[1].advertise().SerializeToString()
                           ) == grpc.StatusCode.ALREADY_EXISTS
            # c1 replays c0's keys as its own: refused, nothing recorded
            assert code_of(clients[1].step, tasks[1], keys0) == grpc.StatusCode.INVALID_ARGUMENT
            clients[1].step(tasks[1], sessions[1].advertise().SerializeToString())

            tasks2 = _both(clients)
            assert [t.kind for t in tasks2] == [cpb.TASK_KIND_SHARE_KEYS] * 2
            # a replay of phase 1 with other bytes, now that phase 1 closed: late
            assert code_of(clients[0].step, tasks[0], b"\x0a\x01x"
                           ) == grpc.StatusCode.DEADLINE_EXCEEDED
            for i in range(2):
                upload = sessions[i].share_keys(spb.SecAggKeyList.FromString(
                    tasks2[i].step.payload))
                clients[i].step(tasks2[i], upload.SerializeToString())

            tasks3 = _both(clients)
            assert [t.kind for t in tasks3] == [cpb.TASK_KIND_MASKED_TRAIN] * 2
            assert tasks3[0].HasField("train")
            payload = clients[0].pull(tasks3[0])
            shapes = {n: tuple(a.shape) for n, a in zero_delta(payload).items()}
            coords = KeptCoordinates(shapes)
            rng = np.random.default_rng(0)  # test data
            plain = [rng.integers(-2000, 2001, coords.count) / 1024 for _ in range(2)]
            for i in range(2):
                y = sessions[i].masked_input(
                    spb.SecAggShareDelivery.FromString(tasks3[i].step.payload), plain[i])
                bad = spb.SecAggMaskedInput(vector_length=y.size - 1, ring_bits=13,
                                            values=ring.pack(y[1:], 13), num_examples=5)
                assert code_of(clients[i].step, tasks3[i], bad.SerializeToString()
                               ) == grpc.StatusCode.INVALID_ARGUMENT
                msg = spb.SecAggMaskedInput(vector_length=y.size, ring_bits=13,
                                            values=ring.pack(y, 13), num_examples=5)
                clients[i].step(tasks3[i], msg.SerializeToString())

            tasks4 = _both(clients)
            assert [t.kind for t in tasks4] == [cpb.TASK_KIND_UNMASK] * 2
            for i in range(2):
                request = spb.SecAggUnmaskRequest.FromString(tasks4[i].step.payload)
                assert list(request.survivors) == ["c0", "c1"] and not request.dropped
                clients[i].step(tasks4[i], sessions[i].unmask(request).SerializeToString())
            rounds = [r for r in server.coordinator.store.rounds() if r.round == 1]
            assert rounds and rounds[0].status == "completed", rounds
            expected = ring.add(*[(np.rint(p * 1024).astype(np.int64).view(np.uint64)
                                   & np.uint64(8191)) for p in plain], 13)
            digest = hashlib.sha256()
            for arr in coords.scatter(expected).values():
                digest.update(arr.astype("<u8").tobytes())
            assert find_key(rounds[0].measurements, "sum_sha256") == digest.hexdigest()
            assert server.coordinator.model.version == 1
        finally:
            for c in clients:
                c.close()


def test_secagg_config_rules_name_both_keys(tmp_path: Path) -> None:
    def load(*overrides: str) -> ServerConfig:
        return load_config(ServerConfig, overrides=list(overrides), environ={})

    cases = {
        ("aggregation.preset=robust_median",): "aggregation.preset and secagg.enabled",
        ("aggregation.preset=dp_fedavg", "aggregation.weighting=uniform"):
            "dp.mode and secagg.enabled",
        ("secagg.threshold=11",): "secagg.threshold and round.clients_per_round",
        ("secagg.neighbours=4", "secagg.threshold=6"):
            "secagg.threshold and round.clients_per_round",
        ("secagg.value_bits=32", "round.clients_per_round=2000000"):
            "secagg.value_bits and round.clients_per_round",
    }
    for overrides, message in cases.items():
        with pytest.raises(ValueError, match=message):
            load("secagg.enabled=true", *overrides)
    with pytest.raises(ValueError, match="neighbours"):
        load("secagg.neighbours=3")
    with pytest.raises(ValueError, match="threshold"):
        load("secagg.threshold=2.5")
    load("secagg.enabled=true", "aggregation.preset=dp_fedavg", "dp.mode=distributed",
         "aggregation.weighting=uniform")
