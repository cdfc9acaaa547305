"""Server optimizer step: the mean delta moves the global model (FedAvg, FedAdam, FedYogi).

The optimizer reads the model's own masks (``ModelState.masks``, the support of the global
model) and zeroes its per-weight state there *before* stepping, so adaptive moments can
never revive pruned weights; no other transform has to tell it about masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedserver.model_state import ModelState
from fedserver.server_optimizers import ServerOptimizer
from fedserver.transforms.base import RoundResult, StatelessTransform


class OptimizerStep(StatelessTransform):
    name = "optimizer"

    def __init__(self, optimizer: ServerOptimizer) -> None:
        self.optimizer = optimizer

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        if model.masks:
            self.optimizer.apply_mask(model.masks)
        params = self.optimizer.step(model.params, result.mean_delta)
        return model.replace(params=params), {}

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def get_config(self) -> dict[str, Any]:
        return self.optimizer.get_config()
