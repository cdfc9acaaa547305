"""Server-side federated pruning (docs/pruning.md, "The method"): schedules, configuration, score
combination and the controller that owns the mask of every round.

- ``schedule``: ``sparsity_at(round)`` schedules (one-shot, step, cubic) and ``SCHEDULES``.
- ``config``: ``PruningConfig``, the validated ``[pruning]`` table.
- ``combine``: streaming, O(model) combination of client scores (weighted sum, top-k vote).
- ``controller``: ``PruningController`` — phases, masks, mask ids, resumable state.
- ``state``: the JSON-ready persisted form of the controller.

Imports numpy, the standard library and ``fedcompression`` only (no torch, no gRPC), so
the round logic can be unit-tested without a model or a network.
"""

from fedserver.pruning.combine import COMBINERS, ScoreCombiner, TopKVote, WeightedScoreSum
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.controller import PruningController
from fedserver.pruning.schedule import (
    SCHEDULES,
    CubicSchedule,
    OneShotSchedule,
    SparsitySchedule,
    StepSchedule,
    make_schedule,
)

__all__ = [
    "COMBINERS", "SCHEDULES", "CubicSchedule", "OneShotSchedule", "PruningConfig",
    "PruningController", "ScoreCombiner", "SparsitySchedule", "StepSchedule", "TopKVote",
    "WeightedScoreSum", "make_schedule",
]
