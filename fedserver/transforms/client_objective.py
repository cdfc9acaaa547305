"""FedProx's client objective: tells clients the proximal weight; the model is unchanged.

Li et al. (2020) add ``mu/2 * ||w - w_global||^2`` to every client's loss; the server side
of FedProx is plain FedAvg. This transform only contributes the instruction.
"""

from __future__ import annotations

from typing import Any

from fedserver.model_state import ModelState
from fedserver.transforms.base import RoundResult, StatelessTransform


class ProximalObjective(StatelessTransform):
    name = "proximal"

    def __init__(self, *, mu: float) -> None:
        if not mu >= 0:
            raise ValueError(f"proximal_mu must be >= 0, got {mu!r}")
        self.mu = float(mu)

    def instructions(self, round: int) -> dict[str, Any]:
        return {"proximal_mu": self.mu}

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        return model, {}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "mu": self.mu}
