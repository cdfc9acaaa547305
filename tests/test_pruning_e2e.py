"""Federated pruning over real gRPC: invariants in-process, whole runs as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedcore import config as config_io
from fedcore.model_codec import Encoding, decode_mask_message, decode_model, model_digest
from fedcore.pb import coordinator_pb2 as cpb
from fedprune.simulate import SimulationSpec, run_simulation
from fedserver.checkpoint import read_checkpoint
from fedserver.config import ServerConfig
from fedserver.server import RunningServer
from tests.helpers import RawClient, running_server, server_config, update_for

ONE_SHOT = ("pruning.enabled=true", "pruning.schedule=one-shot", "pruning.start_round=1",
            "pruning.end_round=1", "pruning.target_sparsity=0.5")


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, cpb.Task]]:
    """A coordinator whose round 2 trains under a 50% mask (round 1 is completed here)."""
    config = server_config(tmp_path_factory.mktemp("pruned"), *ONE_SHOT, "round.rounds=5")
    with running_server(config) as server:
        client = RawClient(server.port)
        task = client.round()
        zero = {k: np.zeros_like(v) for k, v in decode_model(client.pull(task).model).items()}
        client.push_payload(*update_for(task, zero))
        task2 = client.round()
        assert task2.round == 2 and task2.mask_id
        client.close()
        yield server, task2


def pull_with_mask(client: RawClient, task: cpb.Task) -> tuple[dict, dict]:  # type: ignore[type-arg]
    payload = client.pull(task)
    assert payload.HasField("mask"), "a client that lacks the mask receives it"
    mask_id, masks = decode_mask_message(payload.mask)
    assert mask_id == task.mask_id
    params = decode_model(payload.model, mask_id=mask_id, masks=masks)
    again = client.pull(task, held_mask_id=mask_id)
    assert not again.HasField("mask"), "a client that holds the mask gets it by id only"
    return params, masks


def expect(code: grpc.StatusCode, client: RawClient, header: cpb.UpdateHeader,
           data: bytes) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        client.push_payload(header, data)
    assert exc.value.code() == code, exc.value.details()


def test_downlink_is_sparse_and_pruned_weights_are_zero(pruned) -> None:  # type: ignore[no-untyped-def]
    server, task = pruned
    client = RawClient(server.port)
    params, masks = pull_with_mask(client, task)
    for name, mask in masks.items():
        assert 0.45 < 1 - mask.mean() < 0.55
        assert not np.any(params[name][~mask])
    client.close()


def test_wrong_mask_and_values_at_pruned_positions_are_rejected(pruned) -> None:  # type: ignore[no-untyped-def]
    server, task = pruned
    coord = server.coordinator
    before = (model_digest(coord.model.params), coord.model.version)
    client = RawClient(server.port)
    params, masks = pull_with_mask(client, task)
    delta = {k: np.zeros_like(v) for k, v in params.items()}
    # A stale mask id in the header: FAILED_PRECONDITION.
    expect(grpc.StatusCode.FAILED_PRECONDITION, client, *update_for(task, delta, masks=masks,
                                                                     mask_id="m0-old"))
    # Dense positions carrying values where the mask pruned: INVALID_ARGUMENT.
    name = next(iter(masks))
    dirty = dict(delta)
    dirty[name] = np.where(masks[name], 0.0, 0.5).astype(np.float32)
    header, data = update_for(task, dirty)  # no masks: dense positions
    expect(grpc.StatusCode.INVALID_ARGUMENT, client, header, data)
    assert (model_digest(coord.model.params), coord.model.version) == before
    # The same update under the implied mask is accepted, with zero index bytes.
    header, data = update_for(task, delta, masks=masks, encoding=Encoding("fp32"))
    msg = cpb.UpdatePayload.FromString(data)
    assert all(t.positions.implied_mask_id == task.mask_id for t in msg.delta.tensors
               if t.name in masks)
    assert client.push_payload(header, data).accepted
    client.close()


def _run(tmp: Path, *overrides: str, clients: int = 3) -> tuple[dict, Path]:  # type: ignore[type-arg]
    server = config_io.load(ServerConfig, overrides=[
        f"round.clients_per_round={clients}", *overrides], environ={})
    out = tmp / "run"
    report = run_simulation(SimulationSpec(out=out, clients=clients, server=server,
                                           progress=False, timeout_s=300))
    assert report["finished"] and report["totals"]["rounds_failed"] == 0
    return report, out


def _final_checkpoint(out: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    path = sorted((out / "state" / "checkpoints").glob("round-*.npz"))[-1]
    ckpt = read_checkpoint(path)
    return ckpt.group("param"), ckpt.meta


@pytest.mark.slow
def test_server_mask_run_keeps_pruned_weights_zero_under_fedadam(tmp_path: Path) -> None:
    """FedAdam's moments, client momentum and weight decay must not revive pruned weights."""
    report, out = _run(tmp_path, "round.rounds=6", "aggregation.preset=fedadam",
                       "training.weight_decay=0.001", "pruning.enabled=true",
                       "pruning.schedule=step", "pruning.end_round=3",
                       "pruning.target_sparsity=0.8", "wire.uplink=int8")
    params, _ = _final_checkpoint(out)
    for name in ("fc1.weight", "fc2.weight", "fc3.weight"):
        sparsity = float(np.mean(params[name] == 0))
        assert sparsity >= 0.8 - 1e-3, (name, sparsity)
    rounds = report["rounds"]
    assert rounds[-1]["mask_id"] == rounds[-2]["mask_id"]  # fine-tune: mask frozen
    assert rounds[-1]["bytes_up"] < rounds[0]["bytes_up"] / 3


@pytest.mark.slow
def test_client_scores_structured_run_shrinks_columns(tmp_path: Path) -> None:
    report, out = _run(tmp_path, "round.rounds=5", "pruning.enabled=true",
                       "pruning.scheme=client-scores", "pruning.granularity=structured",
                       "pruning.score_kind=saliency", "pruning.schedule=step",
                       "pruning.end_round=3", "pruning.target_sparsity=0.5")
    params, _ = _final_checkpoint(out)
    w = params["fc2.weight"]
    dead_columns = np.all(w == 0, axis=0)
    assert 0.45 <= dead_columns.mean() <= 0.55  # whole input columns removed
    assert report["rounds"][-1]["metrics"]["accuracy"] > 0.5
