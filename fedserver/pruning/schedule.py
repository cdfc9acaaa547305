"""Sparsity schedules: which fraction of the prunable weights is pruned in a given round.

Contract: a schedule is any object with ``sparsity_at(round: int) -> float``. Rounds are
1-based round numbers; the result is in ``[0, 1)``, is ``0.0`` before the schedule starts,
and never decreases as the round grows (pruning only tightens while a schedule runs).
Schedules are frozen dataclasses, so two schedules are equal iff their parameters are.

Three schedules (docs/pruning.md, "The method"):

- ``OneShotSchedule``: jump to the final sparsity at one round.
- ``StepSchedule``: ``s_t = min(s_final, s_0 + Δs·floor((t − t0)/R))``.
- ``CubicSchedule`` (Zhu & Gupta 2017): ``s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nR))^3``,
  where ``t`` advances in steps of ``R`` and the ratio is clamped to ``[0, 1]``.

``SCHEDULES`` maps the configuration names ``"one-shot"``, ``"step"``, ``"cubic"`` to presets
that build a schedule from the pruning configuration's keys (``start_round``, ``end_round``,
``initial_sparsity``, ``target_sparsity``, ``prune_every``); a preset reaches
``target_sparsity`` at ``end_round`` when ``end_round − start_round`` is a multiple of
``prune_every``. Errors name the configuration key that is wrong.

>>> cubic = CubicSchedule(start_round=1, end_round=11, s_initial=0.0, s_final=0.8, every=2)
>>> [round(cubic.sparsity_at(t), 4) for t in (1, 3, 4, 11, 20)]
[0.0, 0.3904, 0.3904, 0.8, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "SCHEDULES",
    "CubicSchedule",
    "OneShotSchedule",
    "SparsitySchedule",
    "StepSchedule",
    "UnknownScheduleError",
    "make_schedule",
]

_SNAP = 1e-9  # absorbs float rounding of s_0 + Δs·k so the final step hits s_final exactly


class SparsitySchedule(Protocol):
    """Anything that maps a 1-based round number to a sparsity in ``[0, 1)``."""

    def sparsity_at(self, round: int) -> float: ...


class UnknownScheduleError(ValueError):
    """A schedule name that is not in ``SCHEDULES`` was requested."""


def _check_round(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be an integer >= 1, got {value!r}")


def _check_sparsity(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{key} must be a number in [0, 1), got {value!r}")


def _check_ramp(s_initial: float, s_final: float) -> None:
    _check_sparsity("s_initial", s_initial)
    _check_sparsity("s_final", s_final)
    if s_initial > s_final:
        raise ValueError(f"s_initial ({s_initial}) must not exceed s_final ({s_final})")


@dataclass(frozen=True, kw_only=True)
class OneShotSchedule:
    """Sparsity ``sparsity`` from round ``at_round`` on, ``0`` before."""

    at_round: int
    sparsity: float

    def __post_init__(self) -> None:
        _check_round("at_round", self.at_round)
        _check_sparsity("sparsity", self.sparsity)

    def sparsity_at(self, round: int) -> float:
        _check_round("round", round)
        return float(self.sparsity) if round >= self.at_round else 0.0


@dataclass(frozen=True, kw_only=True)
class StepSchedule:
    """``s_t = min(s_final, s_initial + delta·floor((t − start_round)/every))``; 0 before."""

    start_round: int
    s_initial: float
    s_final: float
    delta: float
    every: int

    def __post_init__(self) -> None:
        _check_round("start_round", self.start_round)
        _check_round("every", self.every)
        _check_ramp(self.s_initial, self.s_final)
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not (
            math.isfinite(self.delta) and self.delta >= 0
        ):
            raise ValueError(f"delta must be a finite number >= 0, got {self.delta!r}")
        if self.delta == 0 and self.s_initial < self.s_final:
            raise ValueError("delta must be > 0 when s_initial < s_final")

    def sparsity_at(self, round: int) -> float:
        _check_round("round", round)
        if round < self.start_round:
            return 0.0
        steps = (round - self.start_round) // self.every
        s = self.s_initial + self.delta * steps
        return float(self.s_final) if s >= self.s_final - _SNAP else float(s)


@dataclass(frozen=True, kw_only=True)
class CubicSchedule:
    """Zhu & Gupta gradual pruning from ``s_initial`` at ``start_round`` to ``s_final`` at
    ``end_round``, updated every ``every`` rounds; constant ``s_final`` afterwards."""

    start_round: int
    end_round: int
    s_initial: float
    s_final: float
    every: int

    def __post_init__(self) -> None:
        _check_round("start_round", self.start_round)
        _check_round("every", self.every)
        _check_ramp(self.s_initial, self.s_final)
        if isinstance(self.end_round, bool) or not isinstance(self.end_round, int) or (
            self.end_round <= self.start_round
        ):
            raise ValueError(f"end_round must be an integer > start_round, got {self.end_round!r}")

    def sparsity_at(self, round: int) -> float:
        _check_round("round", round)
        if round < self.start_round:
            return 0.0
        elapsed = (round - self.start_round) // self.every * self.every
        ratio = min(1.0, elapsed / (self.end_round - self.start_round))
        return float(self.s_final + (self.s_initial - self.s_final) * (1.0 - ratio) ** 3)


class _Preset(Protocol):
    def __call__(
        self, *, start_round: int, end_round: int, initial_sparsity: float,
        target_sparsity: float, prune_every: int,
    ) -> SparsitySchedule: ...


def _one_shot(*, start_round: int, end_round: int, initial_sparsity: float,
              target_sparsity: float, prune_every: int) -> SparsitySchedule:
    """Constant ``target_sparsity`` from ``start_round``; ``initial_sparsity`` is unused."""
    return OneShotSchedule(at_round=start_round, sparsity=target_sparsity)


def _ramp_steps(start_round: int, end_round: int, prune_every: int) -> int:
    steps = (end_round - start_round) // prune_every
    if steps < 1:
        raise ValueError(
            f"end_round must be >= start_round + prune_every for a gradual schedule, "
            f"got start_round={start_round}, end_round={end_round}, prune_every={prune_every}")
    return steps


def _step(*, start_round: int, end_round: int, initial_sparsity: float,
          target_sparsity: float, prune_every: int) -> SparsitySchedule:
    """Equal steps ``Δs = (target − initial) / n``; the ``n``-th step lands at ``end_round``."""
    steps = _ramp_steps(start_round, end_round, prune_every)
    delta = (target_sparsity - initial_sparsity) / steps
    return StepSchedule(start_round=start_round, s_initial=initial_sparsity,
                        s_final=target_sparsity, delta=delta, every=prune_every)


def _cubic(*, start_round: int, end_round: int, initial_sparsity: float,
           target_sparsity: float, prune_every: int) -> SparsitySchedule:
    _ramp_steps(start_round, end_round, prune_every)
    return CubicSchedule(start_round=start_round, end_round=end_round,
                         s_initial=initial_sparsity, s_final=target_sparsity, every=prune_every)


SCHEDULES: Mapping[str, _Preset] = MappingProxyType(
    {"one-shot": _one_shot, "step": _step, "cubic": _cubic})


def make_schedule(name: str, *, start_round: int, end_round: int, initial_sparsity: float,
                  target_sparsity: float, prune_every: int) -> SparsitySchedule:
    """Build the schedule registered as ``name`` from pruning-configuration values.

    >>> step = make_schedule("step", start_round=1, end_round=4, initial_sparsity=0.0,
    ...                      target_sparsity=0.75, prune_every=1)
    >>> [step.sparsity_at(t) for t in range(1, 6)]
    [0.0, 0.25, 0.5, 0.75, 0.75]
    """
    try:
        preset = SCHEDULES[name]
    except KeyError:
        raise UnknownScheduleError(
            f"schedule: unknown name {name!r}, expected one of {sorted(SCHEDULES)}") from None
    return preset(start_round=start_round, end_round=end_round, initial_sparsity=initial_sparsity,
                  target_sparsity=target_sparsity, prune_every=prune_every)
