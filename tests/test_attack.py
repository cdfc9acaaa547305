"""Simulated client-side attacks (fedclient.attack) and how simulate assigns them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fedclient.attack import claimed_examples, poisoned_delta, training_data
from fedclient.config import AttackConfig
from fedprune.simulate import SimulationSpec, client_configs

DELTA = {"w": np.array([1.0, -2.0], np.float32)}


def test_delta_attacks() -> None:
    np.testing.assert_array_equal(poisoned_delta(AttackConfig("sign_flip"), DELTA)["w"],
                                  [-10.0, 20.0])
    np.testing.assert_array_equal(poisoned_delta(AttackConfig("scale", scale=3), DELTA)["w"],
                                  [3.0, -6.0])
    assert poisoned_delta(AttackConfig(), DELTA) is DELTA
    assert poisoned_delta(AttackConfig("label_flip"), DELTA) is DELTA


def test_label_flip_and_claim() -> None:
    data = TensorDataset(torch.zeros(3, 2), torch.tensor([0, 3, 9]))
    flipped = training_data(AttackConfig("label_flip"), data, num_classes=10)
    assert [int(flipped[i][1]) for i in range(3)] == [9, 6, 0] and len(flipped) == 3
    assert training_data(AttackConfig("scale"), data, num_classes=10) is data
    assert claimed_examples(AttackConfig("claim_examples"), 50) == 2**40
    assert claimed_examples(AttackConfig("sign_flip"), 50) == 50
    with pytest.raises(ValueError, match="behaviour"):
        AttackConfig("bogus")


def test_simulate_marks_the_first_ceil_fraction_clients(tmp_path: Path) -> None:
    spec = SimulationSpec(out=tmp_path, clients=5, attack=AttackConfig("sign_flip"),
                          attack_fraction=0.3)
    behaviours = [c.attack.behaviour for c in client_configs(spec, 1, "t")]
    assert behaviours == ["sign_flip", "sign_flip", "", "", ""]
    assert all(not c.attack.behaviour
               for c in client_configs(SimulationSpec(out=tmp_path, clients=3), 1, "t"))
