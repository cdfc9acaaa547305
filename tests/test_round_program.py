"""The round program over real gRPC: bounded client weights, the Step RPC, checkpoints
that refuse another program, per-client metrics."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore.pb import coordinator_pb2 as cpb
from fedserver.coordinator import Coordinator
from fedserver.model_state import CheckpointMismatch, save_model_state
from fedserver.server import RunningServer
from fedserver.state_dir import StartMode, StateError
from fedserver.store import RoundRecord, RunStore
from tests.helpers import (
    RawClient,
    running_server,
    server_config,
    update_for,
    wait_for,
    zero_delta,
)


def _two_client_round(server: RunningServer, liar_examples: int) -> tuple[dict, dict]:
    """Honest c1 (10 examples, delta +1) and liar c2 (``liar_examples``, delta -100)."""
    clients = [RawClient(server.port, "c1"), RawClient(server.port, "c2")]
    try:
        with ThreadPoolExecutor(2) as pool:  # both check in declaring 10 examples
            tasks = list(pool.map(lambda c: c.round(), clients))
        before = dict(server.coordinator.model.params)
        for c, task, value, n in zip(clients, tasks, (1.0, -100.0), (10, liar_examples)):
            delta = {k: np.full_like(v, value) for k, v in zero_delta(c.pull(task)).items()}
            assert c.push_payload(*update_for(task, delta, num_examples=n)).accepted
        wait_for(lambda: server.coordinator.model.version == 1, 30, "the round to close")
        return before, dict(server.coordinator.model.params)
    finally:
        for c in clients:
            c.close()


def test_a_client_claiming_2_pow_40_examples_cannot_move_the_model_alone(tmp_path: Path) -> None:
    config = server_config(tmp_path / "s", "evaluation.test_set=", "round.clients_per_round=2",
                           "round.min_clients=2")
    with running_server(config) as server:
        before, after = _two_client_round(server, liar_examples=2**40)
    moved = np.mean(after["fc1.bias"] - before["fc1.bias"])
    # cap = 4 x median declared (10) = 40: the liar weighs 40 / 50, not 2^40 / (2^40 + 10)
    assert moved == pytest.approx((10 * 1.0 + 40 * -100.0) / 50, rel=1e-4)
    store = RunStore(tmp_path / "s" / "fedprune.sqlite")
    try:
        (record,) = store.rounds()
    finally:
        store.close()
    assert record.client_metrics["c2"]["weight"] == 40.0
    assert record.client_metrics["c2"]["num_examples"] == 2.0**40
    assert record.client_metrics["c1"]["weight"] == 10.0


def test_step_rpc_validates_the_task_and_refuses_steps_no_phase_takes(tmp_path: Path) -> None:
    config = server_config(tmp_path / "s", "evaluation.test_set=")
    with running_server(config) as server:
        client = RawClient(server.port)
        try:
            with pytest.raises(grpc.RpcError) as unknown:
                client.stub.Step(cpb.StepRequest(task_id="nope", round=1,
                                                 kind=cpb.TASK_KIND_ADVERTISE_KEYS),
                                 metadata=client.metadata, timeout=10)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            task = client.round()
            assert task.kind == cpb.TASK_KIND_TRAIN
            with pytest.raises(grpc.RpcError) as refused:
                client.stub.Step(cpb.StepRequest(task_id=task.task_id, round=task.round,
                                                 kind=cpb.TASK_KIND_ADVERTISE_KEYS),
                                 metadata=client.metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "takes no protocol steps" in refused.value.details()
            # the task is still open: the client can push its update
            ack = client.push_payload(*update_for(task, zero_delta(client.pull(task))))
            assert ack.accepted and not ack.duplicate
        finally:
            client.close()


def _state_with_one_round(tmp_path: Path, *overrides: str) -> Path:
    state = tmp_path / "s"
    coord = Coordinator(server_config(state, "evaluation.test_set=", *overrides))
    name = save_model_state(coord.state_dir, 1, coord.model.replace(version=1),
                            coord.runner.components(), coord.run_id)
    coord.store.record_round(RoundRecord(1, "completed", "", 1, "", 0, 1, 1, 1, 0, 0, {}, {},
                                         []), checkpoint=name)
    coord.close()
    return state


def test_checkpoint_refuses_another_program_naming_the_component(tmp_path: Path) -> None:
    state = _state_with_one_round(tmp_path)
    resumed = Coordinator(server_config(state, "evaluation.test_set="))
    assert resumed.model.version == 1 and resumed.sm.step.round == 2
    resumed.close()
    # the changed config is refused first, naming the key ...
    with pytest.raises(StateError, match='aggregation.preset "fedavg" -> "fedadam"'):
        Coordinator(server_config(state, "evaluation.test_set=", "aggregation.preset=fedadam"))
    # ... and even when the operator accepts the change, the checkpoint refuses a program
    # whose components it cannot hold
    accept = StartMode(accept_config_change=True)
    with pytest.raises(CheckpointMismatch, match="component 'optimizer'"):
        Coordinator(server_config(state, "evaluation.test_set=", "aggregation.preset=fedadam"),
                    start=accept)
    with pytest.raises(CheckpointMismatch, match=r"components \['aggregator', 'optimizer'\]"):
        Coordinator(server_config(state, "evaluation.test_set=", "pruning.enabled=true"),
                    start=accept)
    store = RunStore(state / "fedprune.sqlite")  # the refusals wrote nothing
    try:
        info = store.run_info()
        assert info is not None and info[2]["aggregation"]["preset"] == "fedavg"
        assert store.get_state("config_changes") is None
    finally:
        store.close()


def test_cli_names_the_mismatch_in_one_line(tmp_path: Path) -> None:
    state = _state_with_one_round(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "fedserver", "--state-dir", str(state), "--port", "0",
         "--set", "auth.shared_token=t", "--set", "evaluation.test_set=",
         "--set", "aggregation.preset=fedyogi"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "aggregation.preset" in errors[0]
    assert "Traceback" not in proc.stderr
