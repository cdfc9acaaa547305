"""FedCompress's adaptive cluster count: the plateau rule of the reference code, pure.

One ``k`` for every clustered tensor. It starts at ``k_min`` and only grows, by ``step``
up to ``k_max``, when both the clients' accuracy and the representation score
(:mod:`fedcore.representation`) have stopped improving. After each round the server
records ``(accuracy, score, k used)`` and decides (:func:`plateaued`):

- only when at least ``patience`` recorded rounds used the current ``k`` and at least
  ``max(warmup_rounds, 2)`` rounds are recorded, and ``k < k_max``;
- with rolling means over ``window`` rounds (fewer at the start), the last change of
  each rolling mean must be at most its threshold:
  ``d_acc <= limit / D`` and ``d_score <= 10 * limit / D`` with
  ``D = base * (k - k_min)`` (1 when that is 0), so the thresholds shrink as ``k`` grows
  and a larger ``k`` needs a flatter plateau to grow again.

Defaults are the reference's: ``k`` in [8, 30], step 1, window 3, patience 4, warm-up 3,
limit 0.01, base 2. :class:`ClusterSchedule` holds the history; its ``state_dict`` makes
it resumable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class PlateauRule:
    k_min: int = 8
    k_max: int = 30
    step: int = 1
    window: int = 3
    patience: int = 4
    warmup_rounds: int = 3
    limit: float = 0.01
    base: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.k_min <= self.k_max <= 256:
            raise ValueError(f"need 1 <= k_min <= k_max <= 256, got {self.k_min}, {self.k_max}")
        for name in ("step", "window", "patience", "warmup_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (math.isfinite(self.limit) and self.limit >= 0):
            raise ValueError("limit must be finite and >= 0")
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError("base must be finite and > 0")


def _rolling(xs: Sequence[float], window: int) -> list[float]:
    return [sum(xs[max(0, i - window + 1):i + 1]) / len(xs[max(0, i - window + 1):i + 1])
            for i in range(len(xs))]


def plateaued(accuracy: Sequence[float], score: Sequence[float], clusters: Sequence[int],
              rule: PlateauRule) -> bool:
    """Whether ``k`` should grow after the last recorded round (see the module doc).

    >>> r = PlateauRule(k_min=8, k_max=30, patience=2, warmup_rounds=2)
    >>> plateaued([0.5, 0.9], [10.0, 12.0], [8, 8], r)  # still improving
    False
    >>> plateaued([0.9, 0.9], [12.0, 12.0], [8, 8], r)  # flat
    True
    """
    if not len(accuracy) == len(score) == len(clusters) or not clusters:
        return False
    current = clusters[-1]
    if current >= rule.k_max:
        return False
    if sum(1 for k in clusters if k == current) < rule.patience:
        return False
    if len(clusters) < max(rule.warmup_rounds, 2):
        return False
    acc, sc = _rolling(accuracy, rule.window), _rolling(score, rule.window)
    scale = rule.base * (current - rule.k_min) or 1.0
    return (acc[-1] - acc[-2] <= rule.limit / scale
            and sc[-1] - sc[-2] <= 10 * rule.limit / scale)


class ClusterSchedule:
    """The current ``k`` and the history the rule reads."""

    def __init__(self, rule: PlateauRule) -> None:
        self.rule = rule
        self.k = rule.k_min
        self.accuracy: list[float] = []
        self.score: list[float] = []
        self.clusters: list[int] = []

    def observe(self, *, accuracy: float, score: float) -> bool:
        """Record a round trained at the current ``k``; True when ``k`` grew."""
        if not (math.isfinite(accuracy) and math.isfinite(score)):
            raise ValueError("accuracy and score must be finite")
        self.accuracy.append(float(accuracy))
        self.score.append(float(score))
        self.clusters.append(self.k)
        if plateaued(self.accuracy, self.score, self.clusters, self.rule):
            self.k = min(self.k + self.rule.step, self.rule.k_max)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "accuracy": list(self.accuracy), "score": list(self.score),
                "clusters": list(self.clusters)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"k", "accuracy", "score", "clusters"} - set(state)
        if missing:
            raise ValueError(f"cluster schedule state lacks {sorted(missing)}")
        k = int(state["k"])
        if not self.rule.k_min <= k <= self.rule.k_max:
            raise ValueError(f"cluster schedule state has k = {k} outside the rule's range")
        lists = [list(state[key]) for key in ("accuracy", "score", "clusters")]
        if len({len(x) for x in lists}) != 1:
            raise ValueError("cluster schedule history lists differ in length")
        self.k = k
        self.accuracy = [float(x) for x in lists[0]]
        self.score = [float(x) for x in lists[1]]
        self.clusters = [int(x) for x in lists[2]]

    def get_config(self) -> dict[str, Any]:
        return asdict(self.rule)
