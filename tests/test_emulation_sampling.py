"""Poisson cohort sampling in the in-process emulation (fedprune/emulation.py)."""

from __future__ import annotations

import statistics

import pytest

from fedcore import config as config_io
from fedcore.datasets import DataSpec, load_client_data
from fedprune.emulation import Emulation
from fedserver.config import ServerConfig
from fedserver.privacy.accountant import epsilon_of
from fedserver.transforms.privacy_accounting import PrivacyAccounting

P, Q = 8, 0.5


def _clients(n: int = P) -> list:
    return [load_client_data(DataSpec(source="synthetic", partition=i, num_partitions=n,
                                      alpha=None, synthetic_samples=20 * n))
            for i in range(n)]


def _dp_config(z: float = 1.0, delta: float = 1e-3) -> ServerConfig:
    return config_io.build(ServerConfig, {
        "aggregation": {"preset": "dp_fedavg", "weighting": "uniform"},
        "dp": {"noise_multiplier": z, "clip_norm": 1.0, "delta": delta,
               "expected_clients": int(Q * P)},
        "round": {"rounds": 2, "clients_per_round": int(Q * P)},
        "training": {"local_epochs": 1}})


def _accountant(emulation: Emulation):
    return next(t for t in emulation.program.transforms
                if isinstance(t, PrivacyAccounting)).accountant


def test_seeded_cohort_sizes_average_q_times_population():
    emulation = Emulation(ServerConfig(), _clients(), evaluator=None, sampling_rate=Q,
                          sampling_seed=1)
    sizes = [len(emulation.cohort()) for _ in range(2000)]
    assert statistics.mean(sizes) == pytest.approx(Q * P, abs=0.1)
    assert min(sizes) == 0 and max(sizes) == P  # independent draws, not a fixed-size cohort
    again = Emulation(ServerConfig(), _clients(), evaluator=None, sampling_rate=Q,
                      sampling_seed=1)
    first = [[c.client_id for c in again.cohort()] for _ in range(5)]
    emulation = Emulation(ServerConfig(), _clients(), evaluator=None, sampling_rate=Q,
                          sampling_seed=1)
    assert [[c.client_id for c in emulation.cohort()] for _ in range(5)] == first


def test_accountant_gets_q_only_when_sampling():
    assert _accountant(Emulation(_dp_config(), _clients(), evaluator=None,
                                 sampling_rate=Q, sampling_seed=0)).q == Q
    assert _accountant(Emulation(_dp_config(), _clients(), evaluator=None)).q == 1.0
    with pytest.raises(ValueError):
        Emulation(_dp_config(), _clients(), evaluator=None, sampling_rate=0.0)
    with pytest.raises(ValueError):
        Emulation(_dp_config(), _clients(), evaluator=None, sampling_seed=3)


def test_dp_emulation_epsilon_is_poisson_subsampled_gaussian():
    z, delta = 1.0, 1e-3
    emulation = Emulation(_dp_config(z, delta), _clients(), evaluator=None,
                          sampling_rate=Q, sampling_seed=0)
    records = emulation.run(2)
    assert [r["round"] for r in records] == [1, 2]
    assert all(r["cohort"] > 0 for r in records)  # seed 0 samples someone in both rounds
    assert records[-1]["epsilon"] == pytest.approx(epsilon_of([(z, Q)] * 2, delta))
    assert records[-1]["epsilon"] < epsilon_of([(z, 1.0)] * 2, delta)  # amplification


def test_empty_round_is_skipped_and_spends_nothing():
    emulation = Emulation(_dp_config(), _clients(2), evaluator=None, sampling_rate=1e-9,
                          sampling_seed=0)
    before = {n: p.copy() for n, p in emulation.runner.model.params.items()}
    record = emulation.run_round(1)
    assert record["cohort"] == 0 and record["skipped"] and record["epsilon"] == 0.0
    assert all((emulation.runner.model.params[n] == p).all() for n, p in before.items())
