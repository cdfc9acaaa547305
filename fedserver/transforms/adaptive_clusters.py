"""FedCompress's cluster-count step: tells clients ``k``, reads their summaries, moves ``k``.

Each round it instructs clients to cluster their weight tensors at the schedule's current
``k`` (:mod:`fedcore.weight_clustering`) and to return a representation summary
(:mod:`fedcore.representation`), which a side aggregator *sums* over the round's updates.
After aggregation it computes the round's client accuracy (``sum correct / sum
examples``) and representation score (effective rank of the summed Gram matrix) and lets
the plateau rule (:mod:`fedserver.cluster_schedule`) decide next round's ``k``. The model
is not changed here; the distillation step that follows reads the new ``k`` from the
same schedule object, which the preset hands to both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedcore.representation import effective_rank, triangle_size
from fedserver.aggregators.base import Aggregator
from fedserver.aggregators.side import SideAggregator
from fedserver.cluster_schedule import ClusterSchedule
from fedserver.model_state import ModelState
from fedserver.transforms.base import RoundResult

REPRESENTATION = "representation"


class SummarySum:
    """Unweighted sum of representation summaries (a sum of Grams is the union's Gram)."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self._shapes = dict(shapes)
        self.reset()

    def reset(self) -> None:
        self._sums = {n: np.zeros(s, dtype=np.float64) for n, s in self._shapes.items()}

    def add(self, scores: Mapping[str, np.ndarray], weight: float) -> None:
        if {n: tuple(np.shape(v)) for n, v in scores.items()} != self._shapes:
            raise ValueError(f"summary tensors must be {self._shapes}")
        for n, v in scores.items():
            self._sums[n] += np.asarray(v, dtype=np.float64)

    def merge(self, other: SummarySum) -> None:  # type: ignore[override]
        for n in self._sums:
            self._sums[n] += other._sums[n]

    def result(self) -> dict[str, np.ndarray]:
        return {n: v.copy() for n, v in self._sums.items()}


def round_seed(seed: int, round: int) -> int:
    """The projection seed of a round (the same for every client of the round)."""
    return int.from_bytes(hashlib.sha256(f"repr/{seed}/{round}".encode()).digest()[:8],
                          "big") >> 1


class AdaptiveClusters:
    name = "clusters"

    def __init__(self, schedule: ClusterSchedule, *, representation_dim: int,
                 cluster_epochs: int, centroid_learning_rate: float, seed: int = 0) -> None:
        if representation_dim < 1:
            raise ValueError("representation_dim must be >= 1 (the effective width)")
        self.schedule = schedule
        self.dim = int(representation_dim)
        self.cluster_epochs = int(cluster_epochs)
        self.centroid_learning_rate = float(centroid_learning_rate)
        self.seed = int(seed)
        self.shapes = {"gram": (triangle_size(self.dim),), "examples": (1,), "correct": (1,)}

    def instructions(self, round: int) -> dict[str, Any]:
        return {"clusters": self.schedule.k, "cluster_epochs": self.cluster_epochs,
                "centroid_learning_rate": self.centroid_learning_rate,
                "report_representation": True, "representation_dim": self.dim,
                "representation_seed": round_seed(self.seed, round)}

    def side_aggregators(self, round: int) -> dict[str, Aggregator]:
        return {REPRESENTATION: SideAggregator(key=REPRESENTATION, shapes=self.shapes,
                                               make_combiner=lambda: SummarySum(self.shapes),
                                               name="sum")}

    def admits(self, round: int) -> str | None:
        return None

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        used = self.schedule.k
        sums = result.sides.get(REPRESENTATION)
        if sums is None:  # no summary arrived: nothing to learn from, k stays
            return model, {"metrics": {"clusters": float(used)}}
        examples = float(sums["examples"][0])
        accuracy = float(sums["correct"][0]) / examples
        score = effective_rank(sums["gram"])
        grew = self.schedule.observe(accuracy=accuracy, score=score)
        return model, {"grew": grew, "metrics": {
            "clusters": float(used), "next_clusters": float(self.schedule.k),
            "client_accuracy": accuracy, "representation_score": score}}

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.schedule.load_state_dict(state)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.schedule.get_config(), "dim": self.dim,
                "cluster_epochs": self.cluster_epochs,
                "centroid_learning_rate": self.centroid_learning_rate, "seed": self.seed}
