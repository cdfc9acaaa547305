"""Reduced local training under structured pruning equals masked dense training.

One local round from the same pulled weights, data order and seed, with momentum, coupled
weight decay and the FedProx term on: the reduced model's update, mapped back to the dense
coordinates, matches masked dense training within float rounding on every coordinate
(kept, passive and pruned), for the MLP and the CNN, and pruned coordinates are exactly 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fedclient.local_work import LocalWorker
from fedcompression import allocate_masks, group_scores, structured_granularity
from fedcore import config as config_io
from fedcore.client_training import train_update
from fedcore.datasets import DataSpec, load_client_data
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.reduced_training import passive_factor
from fedcore.structure import plan_structure
from fedcore.training import TrainConfig
from fedprune.simulate import SimulationSpec, run_simulation
from fedserver.checkpoint import read_checkpoint
from fedserver.config import ServerConfig
from fedserver.pruning.config import PruningConfig
from fedserver.store import RunStore

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.05, momentum=0.9,
                     weight_decay=1e-3, seed=3)
MLP_COLUMNS = {"fc2.weight": "columns", "fc3.weight": "columns"}
MLP_ROWS = {"fc1.weight": "rows", "fc2.weight": "rows", "fc3.weight": "columns"}
CNN_CHANNELS = {"conv1.weight": "channels", "conv2.weight": "channels", "fc.weight": "columns"}


@pytest.fixture(scope="module")
def data():
    return load_client_data(DataSpec(partition=0, num_partitions=3))


def pulled_and_masks(model_name: str, granularities: dict[str, str], sparsity: float = 0.8
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A global model zeroed outside magnitude masks of the given granularities."""
    params = get_parameters(build_model(model_name, seed=1))
    masks: dict[str, np.ndarray] = {}
    for name, g in granularities.items():
        masks.update(allocate_masks({name: group_scores(params[name], g)}, sparsity,
                                    granularity=g, shapes={name: params[name].shape}))
    for name, mask in masks.items():
        params[name] = np.where(mask, params[name], 0).astype(np.float32)
    return params, masks


def both_ways(model_name, params, masks, data, config=CONFIG, mu=0.01):  # type: ignore[no-untyped-def]
    return [train_update(build_model(model_name), params, masks, data.train, config,
                         mode=mode, proximal_mu=mu) for mode in ("masked", "reduced")]


def assert_same_update(masked, reduced, masks) -> None:  # type: ignore[no-untyped-def]
    assert not masked.reduced and reduced.reduced
    assert masked.result.steps == reduced.result.steps
    assert reduced.result.loss == pytest.approx(masked.result.loss, rel=1e-5)
    for name, d in masked.delta.items():
        np.testing.assert_allclose(reduced.delta[name], d, atol=2e-6, rtol=1e-4, err_msg=name)
    for name, mask in masks.items():
        assert not reduced.delta[name][~mask].any(), f"{name}: pruned coordinates moved"


@pytest.mark.parametrize("model_name,granularities", [
    ("mlp", MLP_COLUMNS), ("mlp", MLP_ROWS), ("cnn", CNN_CHANNELS)])
def test_reduced_update_equals_masked_dense_update(data, model_name, granularities) -> None:
    params, masks = pulled_and_masks(model_name, granularities)
    masked, reduced = both_ways(model_name, params, masks, data)
    assert_same_update(masked, reduced, masks)
    assert reduced.metrics["reduced_training"] == 1.0
    assert reduced.metrics["reduced_size_fraction"] < 0.5
    assert masked.metrics == {"reduced_training": 0.0}  # "masked" asked for: no fallback


def test_passive_weights_decay_in_closed_form(data) -> None:
    """Column pruning kills whole hidden units; their incoming rows only decay, and the
    reduced client moves them exactly as the dense one does (weight decay + FedProx)."""
    params, masks = pulled_and_masks("mlp", MLP_COLUMNS)
    plan = plan_structure(build_model("mlp"), masks, input_shape=(64,), biases=params)
    assert plan.passive["fc1.weight"].any() and not plan.carries
    masked, reduced = both_ways("mlp", params, masks, data, mu=0.05)
    rows = plan.passive["fc1.weight"]
    factor, _ = passive_factor(masked.result.steps, CONFIG, 0.05)
    assert factor < 1.0
    np.testing.assert_allclose(masked.delta["fc1.weight"][rows],
                               (factor - 1) * params["fc1.weight"][rows], rtol=1e-4, atol=1e-7)
    assert_same_update(masked, reduced, masks)


def test_strong_decay_carries_inert_units_instead_of_dropping_them(data) -> None:
    """With lr * weight_decay large the passive factor turns negative on the way, so a
    ReLU unit with a negative bias could come alive: the client carries every constant."""
    config = TrainConfig(epochs=1, learning_rate=0.05, momentum=0.9, weight_decay=2.0, seed=3)
    assert passive_factor(15, config)[1] < 0
    params, masks = pulled_and_masks("cnn", CNN_CHANNELS)
    masked, reduced = both_ways("cnn", params, masks, data, config=config, mu=0.0)
    assert_same_update(masked, reduced, masks)


def test_half_rows_reduce_only_neurons_with_both_halves_pruned(data) -> None:
    """A half row is half of a neuron's inputs: the neuron goes only when both halves are
    pruned; the other pruned halves are masked inside the reduced model."""
    params, masks = pulled_and_masks("mlp", {"fc2.weight": "half-rows", "fc3.weight": "half-columns"})
    assert structured_granularity(masks["fc2.weight"]) == "half-rows"
    plan = plan_structure(build_model("mlp"), masks, input_shape=(64,), biases=params)
    both_pruned = ~masks["fc2.weight"].any(axis=1)
    assert 0 < plan.removed_units and "fc2.weight" in plan.residual
    kept = plan.boundaries[1].kept
    assert not both_pruned[kept].any()  # no kept neuron of fc2 has its whole row pruned
    masked, reduced = train_update(build_model("mlp"), params, masks, data.train, CONFIG,
                                   mode="masked"), \
        train_update(build_model("mlp"), params, masks, data.train, CONFIG, mode="auto")
    assert_same_update(masked, reduced, masks)


def test_unstructured_mask_falls_back_and_says_so(data, caplog) -> None:  # type: ignore[no-untyped-def]
    params = get_parameters(build_model("mlp", seed=1))
    rng = np.random.default_rng(0)
    masks = {n: rng.random(params[n].shape) < 0.3 for n in ("fc1.weight", "fc2.weight",
                                                            "fc3.weight")}
    worker = LocalWorker(data, seed=0)
    task = cpb.Task(kind=cpb.TASK_KIND_TRAIN, round=2, model_name="mlp", mask_id="m1",
                    train=cpb.TrainInstructions(local_epochs=1, batch_size=32, learning_rate=0.05,
                                                momentum=0.9, client_training="auto"))
    with caplog.at_level(logging.INFO, logger="fedcore.client_training"):
        outcome = worker.train(task, params, masks)
    assert outcome.metrics["masked_fallback"] == 1.0
    assert outcome.metrics["reduced_training"] == 0.0
    assert "falls back to masked dense training" in caplog.text
    assert "not made of whole structured groups" in caplog.text
    for name, mask in masks.items():  # masked dense training kept them pruned
        np.testing.assert_array_equal(outcome.delta[name][~mask], -params[name][~mask])


def test_unknown_mode_from_the_coordinator_trains_masked_and_says_so(data) -> None:
    params, masks = pulled_and_masks("mlp", MLP_COLUMNS)
    update = train_update(build_model("mlp"), params, masks, data.train, CONFIG, mode="tiny")
    assert not update.reduced and update.metrics["masked_fallback"] == 1.0


def test_client_training_is_validated_and_not_part_of_the_mask_settings() -> None:
    with pytest.raises(ValueError, match="^client_training"):
        PruningConfig(client_training="tiny")
    config = PruningConfig(client_training="masked")
    assert "client_training" not in config.mask_settings()
    assert PruningConfig.from_dict(config.to_dict()) == config


@pytest.mark.slow
def test_structured_federation_trains_reduced_models_over_grpc(tmp_path: Path) -> None:
    """Two client processes, a real coordinator: after the one-shot column mask of round 1,
    round 2's clients train the reduced model, and the global model stays 0 where pruned."""
    server = config_io.load(ServerConfig, overrides=[
        "round.clients_per_round=2", "round.rounds=2", "pruning.enabled=true",
        "pruning.granularity=structured", "pruning.schedule=one-shot", "pruning.start_round=1",
        "pruning.end_round=1", "pruning.target_sparsity=0.8", "pruning.exclude=fc1.weight",
        "training.local_epochs=1"], environ={})
    out = tmp_path / "run"
    report = run_simulation(SimulationSpec(out=out, clients=2, server=server, progress=False,
                                           timeout_s=300))
    assert report["finished"] and report["totals"]["rounds_failed"] == 0
    store = RunStore(out / "state" / "fedprune.sqlite")
    try:
        records = {r.round: r for r in store.rounds()}
    finally:
        store.close()
    assert all("reduced_training" not in m for m in records[1].client_metrics.values())
    metrics = records[2].client_metrics
    assert len(metrics) == 2
    assert all(m["reduced_training"] == 1.0 and m["reduced_size_fraction"] < 0.4
               and "masked_fallback" not in m for m in metrics.values()), metrics
    ckpt = read_checkpoint(sorted((out / "state" / "checkpoints").glob("round-*.npz"))[-1])
    params, masks = ckpt.group("param"), ckpt.group("mask")
    assert set(masks) == {"fc2.weight", "fc3.weight"}
    for name, mask in masks.items():
        assert not params[name][~mask].any()
        assert 0.75 < 1 - mask.mean() < 0.85
    assert report["rounds"][-1]["metrics"]["accuracy"] > 0.5
