"""Differential privacy: clipping, noise, adaptive clip, accounting, budget stop, config."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant

from fedcore import config as config_io
from fedcore.norms import clip_to_norm, global_l2_norm
from fedcore.secure_noise import SecureGaussian
from fedprune.simulate import SimulationSpec, run_simulation
from fedserver.aggregators.adaptive_clip import AdaptiveClip
from fedserver.aggregators.base import Contribution, RoundSpec
from fedserver.aggregators.dp_sum import DPSum
from fedserver.aggregators.mean import FixedDenominatorMean
from fedserver.config import ServerConfig
from fedserver.privacy.accountant import (
    PrivacyAccountant,
    epsilon_of,
    noise_for_epsilon,
    rounds_for_epsilon,
)

SHAPES = {"w": (1000,)}


def _fold(agg, state, updates, reports=None):
    acc = agg.begin(state, RoundSpec(1, SHAPES))
    for i, u in enumerate(updates):
        acc.add(Contribution(f"c{i}", {"w": u}, 1.0, {}, (reports or [{}] * len(updates))[i]))
    return agg.finalize(state, acc)


def test_secure_gaussian_has_the_requested_moments_and_fresh_keys() -> None:
    z = SecureGaussian(testing_seed=1).normal((200_000,), stddev=2.0)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 2.0) < 0.02
    assert np.all(SecureGaussian(testing_seed=1).normal((5,), stddev=1.0)
                  == SecureGaussian(testing_seed=1).normal((5,), stddev=1.0))
    a, b = SecureGaussian().normal((5,), stddev=1.0), SecureGaussian().normal((5,), stddev=1.0)
    assert not np.array_equal(a, b)  # os.urandom keys: never the same stream twice


def test_dp_sum_clips_on_the_server_and_adds_noise_of_z_times_s() -> None:
    agg = DPSum(clip=1.0, noise_multiplier=0.0, expected_clients=2,
                noise=SecureGaussian(testing_seed=0))
    big = np.full(1000, 10.0)  # a client that ignored clipping (norm 316)
    out = _fold(agg, agg.initialize(SHAPES), [big, np.zeros(1000)])
    assert global_l2_norm(out.result) == pytest.approx(1.0)
    assert out.measurements["clipped"] == 1 and out.measurements["dp_event"]["noise_multiplier"] == 0
    noisy = DPSum(clip=0.5, noise_multiplier=2.0, expected_clients=2,
                  noise=SecureGaussian(testing_seed=0))
    out = _fold(noisy, noisy.initialize(SHAPES), [np.zeros(1000)])
    assert np.std(out.result["w"]) == pytest.approx(1.0, rel=0.1)  # z * S = 2 * 0.5


def test_fixed_denominator_does_not_depend_on_who_showed_up() -> None:
    agg = FixedDenominatorMean(DPSum(clip=100.0, noise_multiplier=0.0, expected_clients=4,
                                     noise=SecureGaussian(testing_seed=0)), denominator=4)
    out = _fold(agg, agg.initialize(SHAPES), [np.ones(1000), np.ones(1000)])
    assert np.allclose(out.result["w"], 0.5)  # 2 clients / expected 4, not / 2


def test_client_reported_bit_counts_when_it_clipped_itself() -> None:
    agg = DPSum(clip=AdaptiveClip(initial_norm=1.0, count_stddev=1e-9), noise_multiplier=0.0,
                expected_clients=2, noise=SecureGaussian(testing_seed=0))
    pre_clipped = clip_to_norm({"w": np.full(1000, 5.0)}, 1.0)[0]["w"]
    out = _fold(agg, agg.initialize(SHAPES), [pre_clipped, np.zeros(1000)],
                reports=[{"dp_unclipped": 0.0}, {}])
    assert out.measurements["unclipped_fraction"] == 0.5


def test_adaptive_clip_converges_to_the_target_quantile() -> None:
    """Norms log-normal around 2.0: S must settle near their 0.3 quantile, from 0.1."""
    rng = np.random.default_rng(0)  # the *data*; the DP noise stays a SecureGaussian
    clip = AdaptiveClip(initial_norm=0.1, target_quantile=0.3, learning_rate=0.2,
                        count_stddev=1.0)
    agg = DPSum(clip=clip, noise_multiplier=0.0, expected_clients=100,
                noise=SecureGaussian(testing_seed=3))
    state = agg.initialize(SHAPES)
    direction = np.ones(1000) / math.sqrt(1000)
    for _ in range(300):
        norms = rng.lognormal(mean=math.log(2.0), sigma=0.5, size=100)
        state = _fold(agg, state, [n * direction for n in norms]).state
    quantile = 2.0 * math.exp(0.5 * -0.5244)  # exp(mu + sigma * Phi^-1(0.3))
    assert state["clip_norm"] == pytest.approx(quantile, rel=0.1)


def test_adaptive_noise_split_keeps_the_total() -> None:
    clip = AdaptiveClip(count_stddev=5.0)
    z_delta = clip.value_noise_multiplier(1.0)
    assert (z_delta ** -2 + (2 * 5.0) ** -2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="too small"):
        AdaptiveClip(count_stddev=0.1).value_noise_multiplier(1.0)


def test_epsilon_equals_the_library_value() -> None:
    # the library's RDP accountant on the same events: q = 0.01, z = 1.1, 1000 rounds
    lib = rdp_privacy_accountant.RdpAccountant()
    lib.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.1)), 1000))
    assert epsilon_of([(1.1, 0.01)] * 1000, 1e-5) == pytest.approx(lib.get_epsilon(1e-5))
    assert epsilon_of([(1.1, 0.01)] * 1000, 1e-5) == pytest.approx(1.7118, abs=1e-3)
    acc = PrivacyAccountant(delta=1e-5)
    for _ in range(30):
        acc.compose(1.0)
    assert acc.epsilon() == pytest.approx(39.83, abs=0.01)  # no amplification: q = 1
    restored = PrivacyAccountant(delta=1e-5)
    restored.load_state_dict(acc.state_dict())
    assert restored.epsilon() == acc.epsilon()


def test_planning_inverts_the_accountant() -> None:
    z = noise_for_epsilon(8.0, rounds=30, delta=1e-5)
    assert epsilon_of([(z, 1.0)] * 30, 1e-5) == pytest.approx(8.0, rel=1e-3)
    n = rounds_for_epsilon(5.0, noise_multiplier=3.0, delta=1e-5)
    assert epsilon_of([(3.0, 1.0)] * n, 1e-5) <= 5.0 < epsilon_of([(3.0, 1.0)] * (n + 1), 1e-5)
    out = subprocess.run([sys.executable, "-m", "fedprune", "privacy", "--noise-multiplier",
                          "1", "--rounds", "30"], capture_output=True, text=True, check=True)
    assert "epsilon 39.83" in out.stdout


@pytest.mark.parametrize(("overrides", "keys"), [
    (["aggregation.preset=dp_fedavg"], "aggregation.preset and aggregation.weighting"),
    (["aggregation.preset=dp_fedavg", "aggregation.weighting=uniform", "pruning.enabled=true",
      "pruning.scheme=client-scores"], "aggregation.preset and pruning.scheme"),
    (["aggregation.preset=dp_fedavg", "aggregation.weighting=uniform", "dp.adaptive=true",
      "dp.noise_multiplier=2"], "dp.noise_multiplier and dp.count_stddev"),
    (["dp.delta=1.5"], "delta"), (["dp.clip_norm=0"], "clip_norm"),
])
def test_dp_config_rejects_bad_values_and_impossible_combinations(
        overrides: list[str], keys: str) -> None:
    with pytest.raises(config_io.ConfigError, match=keys):
        config_io.load(ServerConfig, overrides=overrides, environ={})


@pytest.mark.slow
def test_dp_run_over_grpc_reports_epsilon_and_stops_at_the_budget(tmp_path: Path) -> None:
    # at z = 3 (q = 1, delta 1e-5) 3 rounds cost 2.54 and 4 cost 2.99: a budget of 2.8
    # admits exactly 3 of the 5 configured rounds.
    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=5", "round.clients_per_round=3", "aggregation.preset=dp_fedavg",
        "aggregation.weighting=uniform", "dp.noise_multiplier=3", "dp.clip_norm=0.5",
        "dp.target_epsilon=2.8", "wire.uplink=int8"], environ={})
    expected = [epsilon_of([(3.0, 1.0)] * n, 1e-5) for n in (1, 2, 3, 4)]
    assert expected[2] <= 2.8 < expected[3]
    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=3, server=server,
                                           progress=False, timeout_s=300))
    assert report["finished"] and "privacy budget" in report["finish_reason"]
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 3
    assert [r["metrics"]["epsilon"] for r in rounds] == pytest.approx(expected[:3])
    for r in rounds:  # clients clipped to 0.5 before their int8 encoding
        assert all(m["dp_unclipped"] in (0.0, 1.0) for m in r["client_metrics"].values())
        assert r["measurements"]["aggregator"]["value_sum"]["clip_norm"] == 0.5


def test_distributed_dp_tells_clients_their_noise_and_accounts_what_arrived() -> None:
    from fedserver.aggregators.distributed_dp_sum import DistributedDPSum
    from fedserver.presets import build_program

    config = config_io.load(ServerConfig, overrides=[
        "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform", "dp.mode=distributed",
        "dp.noise_multiplier=2", "dp.clip_norm=0.5", "round.clients_per_round=4",
        "evaluation.test_set="], environ={})
    program = build_program(config, initial={"w": np.zeros(3, np.float32)}, evaluator=None)
    state = program.aggregator.initialize({"w": (3,)})
    instr = program.instructions(1, aggregator_state=state)
    assert instr.clip_norm == 0.5 and instr.client_noise_stddev == pytest.approx(2 * 0.5 / 2)
    agg = DistributedDPSum(clip_norm=0.5, noise_multiplier=2.0, expected_clients=4)
    out = _fold(agg, agg.initialize(SHAPES), [np.ones(1000)])  # 1 of 4 clients reported
    assert out.measurements["dp_event"]["noise_multiplier"] == pytest.approx(2.0 * 0.5)
    assert np.array_equal(out.result["w"], np.ones(1000))  # the server adds no noise
    with pytest.raises(config_io.ConfigError, match="dp.mode and dp.adaptive"):
        config_io.load(ServerConfig, overrides=[
            "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform",
            "dp.mode=distributed", "dp.adaptive=true"], environ={})


def test_client_clips_then_adds_its_noise_share() -> None:
    from fedclient.local_work import LocalWorker
    from fedcore.datasets import DataSpec, load_client_data
    from fedcore.params import get_parameters
    from fedcore.pb import coordinator_pb2 as cpb

    worker = LocalWorker(load_client_data(DataSpec(num_partitions=1, val_fraction=0.9)))
    glob = get_parameters(worker.model("mlp"))
    task = cpb.Task(kind=cpb.TASK_KIND_TRAIN, round=1, model_name="mlp", train=cpb.TrainInstructions(
        local_epochs=1, batch_size=32, learning_rate=0.05, clip_norm=1e-6, noise_stddev=0.3))
    out = worker.train(task, glob, None)
    flat = np.concatenate([d.ravel() for d in out.delta.values()])
    assert np.std(flat) == pytest.approx(0.3, rel=0.02)  # the clipped delta is ~0
    assert out.metrics["dp_unclipped"] == 0.0 and out.metrics["dp_noised"] == 1.0


@pytest.mark.slow
def test_distributed_dp_run_over_grpc(tmp_path: Path) -> None:
    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=2", "round.clients_per_round=3", "aggregation.preset=dp_fedavg",
        "aggregation.weighting=uniform", "dp.mode=distributed", "dp.noise_multiplier=1",
        "dp.clip_norm=0.5", "wire.uplink=int8"], environ={})
    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=3, server=server,
                                           progress=False, timeout_s=300))
    rounds = report["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 2
    assert [r["metrics"]["epsilon"] for r in rounds] == pytest.approx(
        [epsilon_of([(1.0, 1.0)] * n, 1e-5) for n in (1, 2)])
    for r in rounds:
        assert all(m["dp_noised"] == 1.0 for m in r["client_metrics"].values())


def test_dp_with_server_mask_pruning_keeps_the_model_inside_its_mask() -> None:
    from fedcore.datasets import DataSpec, load_client_data
    from fedprune.emulation import Emulation

    config = config_io.load(ServerConfig, overrides=[
        "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform", "dp.testing_seed=0",
        "dp.noise_multiplier=0.5", "dp.clip_norm=1", "round.clients_per_round=2",
        "pruning.enabled=true", "pruning.target_sparsity=0.5", "pruning.start_round=1",
        "pruning.end_round=2", "pruning.schedule=one-shot", "training.local_epochs=1",
        "evaluation.test_set="], environ={})
    clients = [load_client_data(DataSpec(partition=i, num_partitions=2)) for i in range(2)]
    emulation = Emulation(config, clients, evaluator=None)
    records = emulation.run(2)
    model = emulation.runner.model
    assert model.masks and records[-1]["sparsity"] == pytest.approx(0.5, abs=0.01)
    for name, mask in model.masks.items():  # noise at pruned positions was discarded
        assert not np.any(model.params[name][~mask])
    assert records[-1]["epsilon"] == pytest.approx(epsilon_of([(0.5, 1.0)] * 2, 1e-5))


def test_poisson_selection_gives_the_accountant_its_rate() -> None:
    from fedserver.presets import build_program
    from fedserver.transforms.privacy_accounting import PrivacyAccounting

    config = config_io.load(ServerConfig, overrides=[
        "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform", "round.min_clients=1",
        "round.selection=poisson", "round.sampling_rate=0.05", "round.population=2000",
        "evaluation.test_set="], environ={})
    program = build_program(config, initial={"w": np.zeros(3, np.float32)}, evaluator=None)
    (accounting,) = [t for t in program.transforms if isinstance(t, PrivacyAccounting)]
    assert accounting.accountant.q == 0.05
    assert program.aggregator.denominator == pytest.approx(100.0)  # q * population
    waiting = build_program(config_io.load(ServerConfig, overrides=[
        "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform",
        "evaluation.test_set="], environ={}), initial={"w": np.zeros(3, np.float32)},
        evaluator=None)
    assert [t for t in waiting.transforms if isinstance(t, PrivacyAccounting)][0].accountant.q == 1.0


@pytest.mark.slow
def test_poisson_dp_run_over_grpc_accounts_with_the_sampling_rate(tmp_path: Path) -> None:
    server = config_io.load(ServerConfig, overrides=[
        "round.rounds=3", "round.clients_per_round=4", "round.min_clients=1",
        "round.selection=poisson", "round.sampling_rate=0.5", "round.population=4",
        "round.deadline_s=60", "aggregation.preset=dp_fedavg", "aggregation.weighting=uniform",
        "dp.noise_multiplier=1", "dp.clip_norm=0.5"], environ={})
    report = run_simulation(SimulationSpec(out=tmp_path / "run", clients=4, server=server,
                                           progress=False, timeout_s=300))
    released = 0
    for r in report["rounds"]:
        assert r["selected"] <= 4
        if r["status"] == "completed":
            released += 1
            assert r["metrics"]["epsilon"] == pytest.approx(
                epsilon_of([(1.0, 0.5)] * released, 1e-5))
        else:
            assert "empty cohort" in r["reason"]
    assert released >= 1
