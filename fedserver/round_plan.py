"""A round is a plan of phases; the state machine runs them in order.

Each :class:`Phase` has a kind (what clients do), a cohort (``sample``: drawn from the
clients waiting in a long-poll; ``survivors``: exactly the clients that completed the
previous phase, as secure aggregation needs one cohort across its steps), a target (results
wanted), a quorum (results needed by the deadline, else the round fails) and a deadline
(seconds from the phase's selection). A failed *required* phase fails its round and ends
it; a failed optional phase (federated evaluation) is recorded and the round goes on.

The global model changes only after the last phase of a round. Federated evaluation is an
ordinary phase: with ``federated_eval_every = N`` a round ``r`` with ``(r - 1) % N == 0``
starts with an EVALUATE phase on the model round ``r - 1`` produced, and an evaluation-only
round ``R + 1`` evaluates the final model when ``R % N == 0``. Kinds are unique within a
plan, so ``(round, kind)`` names one phase.

>>> from fedserver.config import RoundConfig
>>> [p.kind.value for p in RoundPlan(RoundConfig(rounds=2, federated_eval_every=1)).phases(2)]
['evaluate', 'train']
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fedserver.config import RoundConfig


class PhaseKind(enum.Enum):
    TRAIN = "train"
    EVALUATE = "evaluate"
    # secure aggregation (fedserver.secure_aggregation), in this order within one round
    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_TRAIN = "masked_train"
    UNMASK = "unmask"


COHORTS = ("sample", "survivors")


@dataclass(frozen=True)
class Phase:
    kind: PhaseKind
    target: int
    quorum: int
    deadline_s: float
    cohort: str = "sample"
    required: bool = True  # a failed required phase fails and ends its round

    def __post_init__(self) -> None:
        if self.cohort not in COHORTS:
            raise ValueError(f"cohort must be one of {COHORTS}, got {self.cohort!r}")
        if not 1 <= self.quorum <= self.target:
            raise ValueError(f"quorum must be in 1..target ({self.target}), got {self.quorum}")
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {self.deadline_s}")


class RoundPlan:
    """The phases of every round of a run, from the ``[round]`` config. ``training``
    replaces the single TRAIN phase (a step protocol's phases, e.g. secure aggregation's
    four, whose last ends the round)."""

    def __init__(self, config: RoundConfig, *, training: tuple[Phase, ...] | None = None
                 ) -> None:
        self.config = config
        # a Poisson cohort has no fixed size: wait for everyone sampled (or the deadline)
        target = (max(config.population, config.min_clients) if config.selection == "poisson"
                  else config.clients_per_round)
        self._training = training or (Phase(PhaseKind.TRAIN, target=target,
                                            quorum=config.min_clients,
                                            deadline_s=config.deadline_s),)
        self._evaluate = Phase(PhaseKind.EVALUATE, target=config.clients_per_round, quorum=1,
                               deadline_s=config.eval_deadline_s, required=False)

    @property
    def last_round(self) -> int:
        """The last round with a phase (``rounds + 1`` when the final model is evaluated)."""
        every, rounds = self.config.federated_eval_every, self.config.rounds
        return rounds + 1 if every and rounds % every == 0 else rounds

    def phases(self, round: int) -> tuple[Phase, ...]:
        if not 1 <= round <= self.last_round:
            return ()
        every = self.config.federated_eval_every
        evaluate = every > 0 and round > 1 and (round - 1) % every == 0
        train = round <= self.config.rounds
        return (self._evaluate,) * evaluate + self._training * train

    def trains(self, round: int) -> bool:
        """True when ``round`` changes the model (it has phases besides evaluation)."""
        return any(p.kind is not PhaseKind.EVALUATE for p in self.phases(round))
