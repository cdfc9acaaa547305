"""The privacy accountant: composes each round's DP event with ``dp-accounting``'s RDP.

No privacy analysis is written here: a round is a Gaussian mechanism with the round's
effective noise multiplier ``z`` (sensitivity 1 after clipping to S, noise ``z S``),
subsampled only if clients were *Poisson-sampled* from a known population with rate ``q``
(``sampling = "poisson"``). Any other selection (W1's "all clients every round", or a
uniform draw among the clients that happen to be waiting) gets no amplification
(``sampling = "none"``): claiming it for a cohort not sampled that way would understate ε.
The unit of privacy is one client (user-level DP, add-or-remove-one neighbouring).

``state_dict`` is the list of composed rounds (each ``[z, q]``), so a restarted
coordinator recomputes exactly the same ε.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant


def round_event(noise_multiplier: float, q: float) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    return gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian)


def epsilon_of(rounds: list[tuple[float, float]], delta: float) -> float:
    """ε at ``delta`` after composing ``rounds`` (each ``(noise_multiplier, q)``).

    Runs of equal rounds compose as one self-composed event, so a run of R identical rounds
    costs one RDP evaluation, not R."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    for (z, q), run in itertools.groupby(rounds):
        accountant.compose(dp_accounting.SelfComposedDpEvent(round_event(z, q), len(list(run))))
    return float(accountant.get_epsilon(delta)) if rounds else 0.0


class PrivacyAccountant:
    def __init__(self, *, delta: float, q: float = 1.0) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q!r}")
        self.delta, self.q = float(delta), float(q)
        self.rounds: list[tuple[float, float]] = []

    def epsilon(self) -> float:
        return epsilon_of(self.rounds, self.delta)

    def epsilon_after(self, noise_multiplier: float) -> float:
        """ε if one more round with ``noise_multiplier`` were composed."""
        return epsilon_of([*self.rounds, (noise_multiplier, self.q)], self.delta)

    def compose(self, noise_multiplier: float) -> float:
        self.rounds.append((float(noise_multiplier), self.q))
        return self.epsilon()

    def state_dict(self) -> dict[str, Any]:
        return {"name": "rdp", "rounds": [list(r) for r in self.rounds]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != "rdp" or "rounds" not in state:
            raise ValueError("accountant state must be an 'rdp' state with 'rounds'")
        self.rounds = [(float(z), float(q)) for z, q in state["rounds"]]


def noise_for_epsilon(target_epsilon: float, *, rounds: int, delta: float,
                      q: float = 1.0) -> float:
    """The smallest noise multiplier whose ``rounds`` rounds stay within ``target_epsilon``
    (``dp-accounting``'s calibration, RDP)."""
    return float(dp_accounting.calibrate_dp_mechanism(
        rdp_privacy_accountant.RdpAccountant,
        lambda z: dp_accounting.SelfComposedDpEvent(round_event(z, q), rounds),
        target_epsilon, delta, bracket_interval=dp_accounting.ExplicitBracketInterval(
            1e-3, 1e4)))


def rounds_for_epsilon(target_epsilon: float, *, noise_multiplier: float, delta: float,
                       q: float = 1.0, limit: int = 100_000) -> int:
    """How many rounds at ``noise_multiplier`` stay within ``target_epsilon`` (0 if none)."""
    def eps(n: int) -> float:
        if n == 0:
            return 0.0
        accountant = rdp_privacy_accountant.RdpAccountant()
        accountant.compose(dp_accounting.SelfComposedDpEvent(round_event(noise_multiplier, q), n))
        return float(accountant.get_epsilon(delta))
    low, high = 0, limit
    if eps(high) <= target_epsilon:
        return high
    while low < high:  # largest n with eps(n) <= target: eps grows with n
        mid = (low + high + 1) // 2
        if eps(mid) <= target_epsilon:
            low = mid
        else:
            high = mid - 1
    return low
