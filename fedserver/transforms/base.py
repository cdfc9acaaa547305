"""The model-transform contract: what happens to the global model after aggregation.

A round's aggregate (the mean client delta, plus any side results such as combined pruning
scores) goes through the program's transforms in a fixed order, set by the presets
(:mod:`fedserver.presets`): server optimizer step -> distillation -> pruning step ->
evaluation. Each transform

* ``instructions(round) -> dict``: what clients are told this round (keys of
  :class:`fedserver.instructions.RoundInstructions`; two transforms may not set one key);
* ``side_aggregators(round) -> dict[str, Aggregator]``: extra tensor groups it needs
  folded from the updates (key = ``UpdatePayload`` field, e.g. ``"scores"``);
* ``apply(round, model, result) -> (model, measurements)``: the next model, never
  mutating the one it was given; a ``"metrics"`` mapping in the measurements becomes
  round metrics in the run report;
* ``admits(round) -> str | None``: a reason the round must not run (the privacy budget),
  which ends the run cleanly before it;
* ``state_dict()`` / ``load_state_dict()`` / ``get_config()``: stateful transforms resume
  after a restart; a checkpoint refuses another configuration.

Transforms read what they need from :class:`fedserver.model_state.ModelState` (for
instance the optimizer reads the model's masks), never from one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedserver.aggregators.base import Aggregator
from fedserver.model_state import ModelState


@dataclass(frozen=True)
class RoundResult:
    """The aggregate a round produced."""

    round: int
    mean_delta: Mapping[str, np.ndarray]
    sides: Mapping[str, Mapping[str, np.ndarray] | None] = field(default_factory=dict)
    measurements: Mapping[str, Any] = field(default_factory=dict)  # the aggregator's


class ModelTransform(Protocol):
    name: str

    def instructions(self, round: int) -> dict[str, Any]: ...
    def side_aggregators(self, round: int) -> dict[str, Aggregator]: ...
    def admits(self, round: int) -> str | None: ...
    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
    def get_config(self) -> dict[str, Any]: ...


class StatelessTransform:
    """Defaults for transforms with no state, no instructions and no side tensors."""

    name = "stateless"

    def instructions(self, round: int) -> dict[str, Any]:
        return {}

    def side_aggregators(self, round: int) -> dict[str, Aggregator]:
        return {}

    def admits(self, round: int) -> str | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for {state.get('name')!r}, not {self.name!r}")
