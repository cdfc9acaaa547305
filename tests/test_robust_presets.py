"""The recommended robust preset (robust_trimmed_mean, docs/robustness.md) against the two
attacks the issue names: one client claiming 2^40 examples, and 20% of the clients sending
sign-flipped updates (x10). FedAvg without the defence is destroyed by each; the preset is
not. In-process (fedprune.emulation: the coordinator's round runner and the clients' own
attack code); tests/test_robust_e2e.py shows the trimmed mean over real processes."""

from __future__ import annotations

import pytest

from fedclient.config import AttackConfig
from fedcore import config as config_io
from fedcore.datasets import DataSpec, load_client_data
from fedprune.emulation import Emulation
from fedserver.config import ServerConfig
from fedserver.evaluation import ServerEvaluator

CLIENTS, ROUNDS = 10, 6
DATA = [load_client_data(DataSpec(partition=i, num_partitions=CLIENTS)) for i in range(CLIENTS)]


def _accuracy(attack: AttackConfig, adversaries: int, **aggregation: object) -> float:
    config = config_io.build(ServerConfig, {
        "round": {"rounds": ROUNDS, "clients_per_round": CLIENTS, "min_clients": CLIENTS},
        "aggregation": aggregation})
    attacks = [attack if i < adversaries else AttackConfig() for i in range(CLIENTS)]
    em = Emulation(config, DATA, attacks=attacks,
                   evaluator=ServerEvaluator(model_name="mlp", test_set="digits"))
    records = em.run(ROUNDS)
    return next((r["accuracy"] for r in reversed(records) if "accuracy" in r), 0.0)


@pytest.fixture(scope="module")
def clean() -> float:
    return _accuracy(AttackConfig(), 0)


def test_a_client_claiming_2_to_the_40_examples(clean: float) -> None:
    claim = AttackConfig(behaviour="claim_examples", claimed_examples=2 ** 40)
    undefended = _accuracy(claim, 1, preset="fedavg", weight_cap=0.0)
    robust = _accuracy(claim, 1, preset="robust_trimmed_mean")
    assert undefended < clean - 0.15, (clean, undefended)  # one client's model, not the mean
    assert robust > clean - 0.1, (clean, robust)


def test_twenty_percent_sign_flippers(clean: float) -> None:
    flip = AttackConfig(behaviour="sign_flip", scale=10.0)
    undefended = _accuracy(flip, 2, preset="fedavg")
    robust = _accuracy(flip, 2, preset="robust_trimmed_mean")
    assert undefended < 0.3, undefended
    assert robust > clean - 0.1, (clean, robust)
