"""Privacy accounting after every round, and the budget stop before the round that would
exceed it.

The DP aggregator emits its round's privacy event in its measurements (``dp_event``:
the noise multiplier); this transform composes it with the accountant
(:mod:`fedserver.privacy.accountant`), outside the mechanism, and reports ``epsilon`` at the
configured ``delta`` as a round metric. ``admits(round)`` refuses a round when composing one
more event would exceed ``target_epsilon``, so the run ends before the budget is spent,
never after. A round without a DP event (no update arrived) spends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedserver.aggregators.base import find_key
from fedserver.model_state import ModelState
from fedserver.privacy.accountant import PrivacyAccountant
from fedserver.transforms.base import RoundResult, StatelessTransform


class PrivacyAccounting(StatelessTransform):
    name = "privacy"

    def __init__(self, accountant: PrivacyAccountant, *, noise_multiplier: float,
                 target_epsilon: float = 0.0) -> None:
        self.accountant = accountant
        self.noise_multiplier = float(noise_multiplier)
        self.target_epsilon = float(target_epsilon)

    def admits(self, round: int) -> str | None:
        if self.target_epsilon <= 0:
            return None
        after = self.accountant.epsilon_after(self.noise_multiplier)
        if after > self.target_epsilon:
            return (f"privacy budget: round {round} would spend epsilon {after:.4g} > "
                    f"dp.target_epsilon {self.target_epsilon:g} (delta "
                    f"{self.accountant.delta:g})")
        return None

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        event = find_key(result.measurements, "dp_event")
        if event is not None:
            self.accountant.compose(float(event["noise_multiplier"]))
        epsilon = self.accountant.epsilon()
        return model, {"metrics": {"epsilon": epsilon, "delta": self.accountant.delta},
                       "rounds_composed": len(self.accountant.rounds)}

    def state_dict(self) -> dict[str, Any]:
        return self.accountant.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.accountant.load_state_dict(state)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "delta": self.accountant.delta, "q": self.accountant.q,
                "noise_multiplier": self.noise_multiplier,
                "target_epsilon": self.target_epsilon}
