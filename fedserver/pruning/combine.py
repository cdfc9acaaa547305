"""Streaming combination of client importance scores (the "client-scores" pruning scheme).

Contract (``ScoreCombiner``): ``add(scores, weight)`` folds one client's per-tensor score
arrays into running state, ``merge(other)`` folds another combiner of the same kind (sharded
folds), ``result()`` returns one combined score array per tensor (higher
means more important; the mask keeps the highest), ``reset()`` forgets everything. Memory is
O(model): one running array per tensor, never one per client. Scores are indexed by group
(one entry per weight, row, column or channel); the expected shapes are fixed at
construction.

Invariants: ``add`` validates the whole update before changing any state, so a rejected
update (missing/extra tensor, wrong shape, non-finite or negative score, weight that is not
a finite positive number) leaves the combiner untouched; the ``ValueError`` names the
tensor. Scores must be ``>= 0`` (norms, ``|w|``, ``|w·grad|`` are) because the vote
tie-break relies on it. ``result()`` never returns views of the running state.

>>> c = WeightedScoreSum({"w": (2,)})
>>> c.add({"w": np.array([1.0, 0.0])}, weight=1.0)
>>> c.add({"w": np.array([4.0, 3.0])}, weight=3.0)
>>> c.result()["w"].tolist()
[3.25, 2.25]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import numpy as np

from fedserver.pruning._checks import checked_scores, checked_weight

__all__ = ["COMBINERS", "ScoreCombiner", "TopKVote", "WeightedScoreSum", "make_combiner"]

Shapes = Mapping[str, tuple[int, ...]]


class ScoreCombiner(Protocol):
    def add(self, scores: Mapping[str, np.ndarray], weight: float) -> None: ...
    def merge(self, other: ScoreCombiner) -> None: ...
    def result(self) -> dict[str, np.ndarray]: ...
    def reset(self) -> None: ...


class WeightedScoreSum:
    """Example-weighted mean ``Σ_k w_k s_k / Σ_k w_k`` of the clients' score arrays."""

    def __init__(self, shapes: Shapes) -> None:
        self._shapes = {name: tuple(shape) for name, shape in shapes.items()}
        self.reset()

    def reset(self) -> None:
        self._sums = {name: np.zeros(shape) for name, shape in self._shapes.items()}
        self._weight = 0.0

    def add(self, scores: Mapping[str, np.ndarray], weight: float) -> None:
        weight = checked_weight(weight)
        for name, arr in checked_scores(scores, self._shapes).items():
            self._sums[name] += weight * arr
        self._weight += weight

    def merge(self, other: ScoreCombiner) -> None:
        """Fold another combiner of the same shapes (sharded folds)."""
        if not isinstance(other, WeightedScoreSum) or other._shapes != self._shapes:
            raise ValueError("can only merge a WeightedScoreSum of the same shapes")
        for name, s in other._sums.items():
            self._sums[name] += s
        self._weight += other._weight

    def result(self) -> dict[str, np.ndarray]:
        if self._weight == 0:
            raise ValueError("no client scores were added")
        return {name: s / self._weight for name, s in self._sums.items()}


def _top_k_votes(arr: np.ndarray, fraction: float) -> np.ndarray:
    """0/1 votes for the ``ceil(fraction·n)`` highest entries (ties: lower flat index)."""
    flat = arr.ravel()
    k = min(flat.size, max(1, math.ceil(fraction * flat.size - 1e-9)))
    votes = np.zeros(flat.size, dtype=np.int64)
    votes[np.argsort(-flat, kind="stable")[:k]] = 1
    return votes.reshape(arr.shape)


class TopKVote:
    """Each client votes for its top ``top_fraction`` groups of every tensor; the combined
    score orders groups by vote count, ties broken by the example-weighted mean score.

    Votes are unweighted (one client, one vote), so a client cannot outvote others by
    claiming many examples. ``result()`` encodes the lexicographic order as
    ``votes + 0.5 · mean / max(mean)``: the tie-break term lies in ``[0, 0.5]``, below the
    gap of one vote.

    >>> v = TopKVote({"w": (3,)}, top_fraction=1 / 3)
    >>> v.add({"w": np.array([5.0, 1.0, 0.0])}, weight=1.0)
    >>> v.add({"w": np.array([0.0, 1.0, 2.0])}, weight=1.0)
    >>> v.result()["w"].tolist()
    [1.5, 0.2, 1.2]
    """

    def __init__(self, shapes: Shapes, *, top_fraction: float) -> None:
        if isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)) or not (
            0 < top_fraction <= 1
        ):
            raise ValueError(f"top_fraction must be a number in (0, 1], got {top_fraction!r}")
        self._top_fraction = float(top_fraction)
        self._scores = WeightedScoreSum(shapes)
        self._shapes = {name: tuple(shape) for name, shape in shapes.items()}
        self.reset()

    def reset(self) -> None:
        self._scores.reset()
        self._votes = {name: np.zeros(shape, dtype=np.int64)
                       for name, shape in self._shapes.items()}

    def add(self, scores: Mapping[str, np.ndarray], weight: float) -> None:
        checked, weight = checked_scores(scores, self._shapes), checked_weight(weight)
        self._scores.add(checked, weight)
        for name, arr in checked.items():
            self._votes[name] += _top_k_votes(arr, self._top_fraction)

    def merge(self, other: ScoreCombiner) -> None:
        """Fold another vote of the same shapes and top fraction (sharded folds)."""
        if not isinstance(other, TopKVote) or other._top_fraction != self._top_fraction:
            raise ValueError("can only merge a TopKVote with the same top_fraction")
        self._scores.merge(other._scores)
        for name, votes in other._votes.items():
            self._votes[name] += votes

    def result(self) -> dict[str, np.ndarray]:
        means = self._scores.result()
        out = {}
        for name, votes in self._votes.items():
            top = float(means[name].max(initial=0.0))
            tie = 0.5 * means[name] / top if top > 0 else np.zeros_like(means[name])
            out[name] = votes + tie
        return out


CombinerFactory = Callable[[Shapes, float], ScoreCombiner]

COMBINERS: Mapping[str, CombinerFactory] = MappingProxyType({
    "weighted-sum": lambda shapes, top_fraction: WeightedScoreSum(shapes),
    "vote": lambda shapes, top_fraction: TopKVote(shapes, top_fraction=top_fraction),
})


def make_combiner(name: str, shapes: Shapes, *, top_fraction: float) -> ScoreCombiner:
    """The combiner registered as ``name``; ``top_fraction`` is used by ``"vote"`` only."""
    try:
        factory = COMBINERS[name]
    except KeyError:
        raise ValueError(f"combine: unknown name {name!r}, expected one of "
                         f"{sorted(COMBINERS)}") from None
    return factory(shapes, top_fraction)
