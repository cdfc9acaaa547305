"""What clients are asked to do beyond plain local SGD; the model is unchanged.

* FedProx (Li et al. 2020) adds ``mu/2 * ||w - w_global||^2`` to every client's loss; the
  server side of FedProx is plain FedAvg. :class:`ProximalObjective` sends ``mu``.
* q-FFL (Li et al. 2020) weights each update by the loss the global model had on the
  client's data (:class:`fedserver.aggregators.q_fair.QFair`);
  :class:`InitialLossReport` asks clients to report it.
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


class InitialLossReport(StatelessTransform):
    name = "initial_loss_report"

    def instructions(self, round: int) -> dict[str, Any]:
        return {"report_initial_loss": True}

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        return model, {}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}
