"""PruningConfig: defaults, dict round trip, and errors that name the bad key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fedserver.pruning.combine import COMBINERS
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.schedule import SCHEDULES


def test_defaults_are_valid_and_disabled() -> None:
    c = PruningConfig()
    assert c.enabled is False
    assert c.structured_axis == "columns"
    assert c.build_schedule().sparsity_at(c.end_round) == c.target_sparsity


def test_dict_round_trip_and_toml_ready() -> None:
    c = PruningConfig(enabled=True, scheme="client-scores", granularity="structured",
                      allocation="global", schedule="cubic", target_sparsity=0.8,
                      initial_sparsity=0.1, start_round=2, end_round=12, prune_every=2,
                      refine_rounds=3, score_kind="saliency", combine="vote")
    d = c.to_dict()
    assert None not in d.values()  # TOML has no null
    assert "vote_top_fraction" not in d
    assert PruningConfig.from_dict(d) == c
    with_fraction = dataclasses.replace(c, vote_top_fraction=0.25)
    assert PruningConfig.from_dict(with_fraction.to_dict()) == with_fraction


def test_integers_from_toml_become_floats() -> None:
    c = PruningConfig.from_dict({"target_sparsity": 0, "initial_sparsity": 0})
    assert isinstance(c.target_sparsity, float) and isinstance(c.initial_sparsity, float)


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PruningConfig().enabled = True  # type: ignore[misc]


def test_choices_come_from_the_registries() -> None:
    for name in SCHEDULES:
        assert PruningConfig(schedule=name).schedule == name
    for name in COMBINERS:
        assert PruningConfig(combine=name).combine == name


@pytest.mark.parametrize(("overrides", "key"), [
    ({"enabled": "yes"}, "enabled"),
    ({"scheme": "client-mask"}, "scheme"),
    ({"granularity": "rows"}, "granularity"),
    ({"structured_axis": "channels"}, "structured_axis"),
    ({"allocation": "adaptive"}, "allocation"),
    ({"schedule": "linear"}, "schedule"),
    ({"target_sparsity": 0.995}, "target_sparsity"),
    ({"target_sparsity": -0.1}, "target_sparsity"),
    ({"target_sparsity": True}, "target_sparsity"),
    ({"initial_sparsity": 0.6, "target_sparsity": 0.5}, "initial_sparsity"),
    ({"start_round": 0}, "start_round"),
    ({"start_round": True}, "start_round"),
    ({"start_round": 5, "end_round": 4}, "end_round"),
    ({"start_round": 1, "end_round": 10, "prune_every": 2}, "end_round"),  # misaligned
    ({"schedule": "cubic", "start_round": 3, "end_round": 3}, "end_round"),  # no ramp
    ({"prune_every": 0}, "prune_every"),
    ({"refine_rounds": -1}, "refine_rounds"),
    ({"refine_rounds": 1.5}, "refine_rounds"),
    ({"score_kind": "fisher"}, "score_kind"),
    ({"score_kind": "saliency"}, "score_kind"),  # server-mask has no gradients
    ({"combine": "median"}, "combine"),
    ({"vote_top_fraction": 0.0}, "vote_top_fraction"),
    ({"vote_top_fraction": 1.5}, "vote_top_fraction"),
])
def test_validation_names_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}"):
        PruningConfig(**overrides)
    with pytest.raises(ValueError, match=f"^{key}"):
        PruningConfig.from_dict(overrides)


def test_one_shot_allows_a_single_prune_round() -> None:
    c = PruningConfig(schedule="one-shot", start_round=4, end_round=4, target_sparsity=0.9)
    assert c.build_schedule().sparsity_at(4) == 0.9


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match="^targte_sparsity: unknown"):
        PruningConfig.from_dict({"targte_sparsity": 0.5})
