"""The aggregator contract: how one round's client contributions become one result.

Modelled on TensorFlow Federated's aggregation factories: an aggregator is a small object
whose *state* is explicit (returned and passed back, never hidden), composed with others
through constructors (``WeightedMean(Sum(), Sum())``, ``NormBound(WeightedMean(), 1.0)``).

Contract
--------
``initialize(shapes) -> state``
    ``shapes`` maps tensor name -> shape. ``state`` is a JSON-ready mapping (numpy arrays
    allowed as leaves) that survives :mod:`fedserver.model_state`'s checkpoint round trip.
``begin(state, spec) -> Accumulator``
    An empty accumulator for one round (:class:`RoundSpec`).
``Accumulator.add(contribution)``
    Folds one :class:`Contribution`. It validates the whole contribution first and raises
    :class:`RejectedContribution` (a ``ValueError``) on bad input; a rejected
    contribution changes nothing.
``Accumulator.merge(other)``
    Folds another accumulator of the same aggregator and round (sharded or hierarchical
    folds): ``a.add(x); b.add(y); a.merge(b)`` equals ``a.add(x); a.add(y)``.
``finalize(state, acc) -> Output``
    ``Output(state, result, measurements)``: the next round's state, the aggregate
    (``None`` when nothing was added: an empty round has no result), and measurements
    nested by role (a wrapper puts its inner aggregator's under ``"inner"``).
``max_buffered``
    ``None`` for streaming aggregators (memory O(model) whatever the cohort); an int for
    aggregators that must hold contributions (median, Krum): the most they hold.
``get_config()``
    What makes two aggregators equal; a checkpoint records it and refuses to resume under
    another.

Weights: a contribution carries the weight the round runner already bounded
(:mod:`fedserver.aggregators.weighting`), never the raw example count a client claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Arrays = Mapping[str, np.ndarray]
Shapes = Mapping[str, tuple[int, ...]]
State = dict[str, Any]


class RejectedContribution(ValueError):
    """A contribution an accumulator refuses; nothing was folded."""


@dataclass(frozen=True)
class Contribution:
    """One client's input to a round: named float arrays, a bounded weight, side tensors,
    and scalars the client reported about its update (e.g. whether DP clipping bit it)."""

    client_id: str
    values: Arrays
    weight: float = 1.0
    extras: Mapping[str, Arrays] = field(default_factory=dict)
    reports: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundSpec:
    """What an accumulator may know about its round."""

    round: int
    shapes: Shapes


@dataclass(frozen=True)
class Output:
    state: State
    result: dict[str, np.ndarray] | None
    measurements: dict[str, Any]


class Accumulator(Protocol):
    count: int

    def add(self, contribution: Contribution) -> None: ...
    def merge(self, other: Accumulator) -> None: ...


class Aggregator(Protocol):
    max_buffered: int | None

    def initialize(self, shapes: Shapes) -> State: ...
    def begin(self, state: State, spec: RoundSpec) -> Accumulator: ...
    def finalize(self, state: State, acc: Accumulator) -> Output: ...
    def get_config(self) -> dict[str, Any]: ...


def checked_values(values: Arrays, shapes: Shapes) -> dict[str, np.ndarray]:
    """``values`` as float64 arrays of exactly ``shapes``; raises RejectedContribution."""
    if set(values) != set(shapes):
        missing, extra = sorted(set(shapes) - set(values)), sorted(set(values) - set(shapes))
        raise RejectedContribution(f"tensors differ from the aggregate's: missing {missing}, "
                                   f"unexpected {extra}")
    out = {}
    for name, shape in shapes.items():
        arr = np.asarray(values[name], dtype=np.float64)
        if arr.shape != tuple(shape):
            raise RejectedContribution(f"tensor {name!r}: shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise RejectedContribution(f"tensor {name!r}: non-finite values")
        out[name] = arr
    return out


def checked_weight(weight: float) -> float:
    if isinstance(weight, bool) or not (np.isfinite(weight) and weight > 0):
        raise RejectedContribution(f"weight must be finite and > 0, got {weight!r}")
    return float(weight)


def same_kind(acc: object, other: object) -> None:
    """``merge`` only folds accumulators of one aggregator and round."""
    if type(acc) is not type(other):
        raise TypeError(f"cannot merge {type(other).__name__} into {type(acc).__name__}")


def find_key(tree: Any, key: str) -> Any:
    """The first value stored under ``key`` in a nested state or measurements tree (depth
    first), or None. How the program finds what a wrapper publishes at any depth: the
    DP clip norm in the state (told to clients), the DP event in the measurements."""
    if isinstance(tree, Mapping):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = find_key(value, key)
            if found is not None:
                return found
    return None
