"""``PruningController``: the server-owned pruning mask across the rounds of a run.

Contract. Built from a ``PruningConfig`` and ``prunable`` (name → shape of the weight
tensors to prune; every other tensor is never masked). Per round ``t`` the coordinator

1. asks ``mask_for_training(t)`` for the ``(mask_id, masks)`` every client trains under
   (``("", None)`` = dense) and, if ``wants_client_scores(t)``, asks clients for group
   scores of ``score_granularities()`` (shapes ``score_shapes()``), folded with
   ``new_combiner(t)``;
2. after aggregation calls ``update_after_aggregation(t, params, combined_scores)``; on a
   mask step it returns ``(new_mask_id, masks)`` and the coordinator zeroes the pruned
   weights of the global model; otherwise ``None``.

Phases (docs/pruning.md, "The method"): ``dense`` before ``start_round``; ``prune`` on
``[start_round, end_round]`` with a mask step every ``prune_every`` rounds at the schedule's
sparsity; ``refine`` for ``refine_rounds`` rounds; then ``finetune`` with the mask frozen.

Refine *(ours)*: a pruned weight gets no gradient under its mask, so it could never regrow.
A refine cycle is therefore one round trained **dense** (mask id ``""``) from the pruned
global model, followed by re-scoring at ``target_sparsity`` without the previous mask, so
weights that grew large in that round can re-enter the mask and weak ones leave it. The
price is one dense up/downlink per refine cycle.

Invariants: masks are ``bool`` arrays (``True`` = kept) of the tensor's shape, read-only;
one mask per round for all clients; sparsity never decreases during ``prune`` and each new
prune mask is a subset of the previous one (pruned stays pruned; ties among zero scores can
make it slightly sparser than scheduled); mask ids are deterministic,
``m{round}-{sparsity:.3f}-{digest of the bits}``; a round is processed at most once and in
increasing order. ``state_dict()`` is JSON-ready and ``load_state_dict`` restores it exactly,
so a coordinator killed between rounds resumes with identical subsequent masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from fedcompression import group_scores
from fedserver.pruning import _masks
from fedserver.pruning._checks import checked_params, checked_round, checked_scores
from fedserver.pruning.combine import ScoreCombiner, make_combiner
from fedserver.pruning.config import PruningConfig
from fedserver.pruning.state import controller_state, parse_controller_state

__all__ = ["MaskUpdate", "Phase", "PruningController"]

Phase = Literal["dense", "prune", "refine", "finetune"]

Masks = dict[str, np.ndarray]
MaskUpdate = tuple[str, Masks]


def _checked_prunable(prunable: Mapping[str, Any], enabled: bool) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, shape in prunable.items():
        dims = tuple(shape) if isinstance(shape, (tuple, list)) else ()
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"tensor {name!r}: prunable shape must be positive ints, got {shape}")
        shapes[str(name)] = dims
    if enabled and not shapes:
        raise ValueError("prunable must name at least one tensor when pruning is enabled")
    return shapes


class PruningController:
    """Decides the mask of every round; see the module docstring for the contract."""

    def __init__(self, config: PruningConfig, prunable: Mapping[str, tuple[int, ...]]) -> None:
        if not isinstance(config, PruningConfig):
            raise TypeError(f"config must be a PruningConfig, got {type(config).__name__}")
        self._config = config
        self._schedule = config.build_schedule()
        self._shapes = _checked_prunable(prunable, config.enabled)
        self._granularities = {
            name: _masks.granularity_for(name, shape, granularity=config.granularity,
                                         structured_axis=config.structured_axis)
            for name, shape in self._shapes.items()}
        self._score_shapes = {name: _masks.SCORE_SHAPES[self._granularities[name]](shape)
                              for name, shape in self._shapes.items()}
        self._mask_id: str = ""
        self._masks: Masks | None = None
        self._sparsity = 0.0  # what the current mask aimed at
        self._last_round = 0  # last round passed to update_after_aggregation

    @property
    def config(self) -> PruningConfig:
        return self._config

    def score_granularities(self) -> dict[str, str]:
        """Per tensor, the ``fedcompression.group_scores`` granularity clients must use."""
        return dict(self._granularities)

    def score_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._score_shapes)

    def phase(self, round: int) -> Phase:
        """``"dense"``, ``"prune"``, ``"refine"`` or ``"finetune"`` (always dense if disabled)."""
        c = self._config
        if checked_round(round) < c.start_round or not c.enabled:
            return "dense"
        if round <= c.end_round:
            return "prune"
        return "refine" if round <= c.end_round + c.refine_rounds else "finetune"

    def is_mask_step(self, round: int) -> bool:
        """Whether a new mask is computed after this round's aggregation."""
        phase = self.phase(round)
        if phase == "prune":
            return (round - self._config.start_round) % self._config.prune_every == 0
        return phase == "refine"

    def step_sparsity(self, round: int) -> float:
        """The sparsity the mask computed after ``round`` aims at (mask steps only)."""
        if not self.is_mask_step(round):
            raise ValueError(f"round {round} is not a mask step")
        if self.phase(round) == "refine":
            return self._config.target_sparsity
        return max(self._schedule.sparsity_at(round), self._sparsity)

    def wants_client_scores(self, round: int) -> bool:
        return self._config.scheme == "client-scores" and self.is_mask_step(round)

    def new_combiner(self, round: int) -> ScoreCombiner:
        """An empty combiner for this round's client scores (``combine`` of the config)."""
        if not self.wants_client_scores(round):
            raise ValueError(f"round {round} does not collect client scores")
        top = self._config.vote_top_fraction
        top = 1.0 - self.step_sparsity(round) if top is None else top
        return make_combiner(self._config.combine, self._score_shapes, top_fraction=top)

    def mask_for_training(self, round: int) -> tuple[str, Masks | None]:
        """What clients train under in ``round``: dense in ``dense`` and ``refine`` rounds."""
        if self.phase(round) in ("dense", "refine"):
            return "", None
        return self.current()

    def current(self) -> tuple[str, Masks | None]:
        """The latest published mask: the support of the global model."""
        return self._mask_id, None if self._masks is None else dict(self._masks)

    def update_after_aggregation(
        self, round: int, global_params: Mapping[str, np.ndarray],
        client_scores: Mapping[str, np.ndarray] | None,
    ) -> MaskUpdate | None:
        """A new ``(mask_id, masks)`` on mask steps, else ``None``. ``global_params`` are
        scored by the ``server-mask`` scheme; ``client_scores`` (combined) are required by
        ``client-scores`` on mask steps and must be ``None`` otherwise."""
        if checked_round(round) <= self._last_round:
            raise ValueError(f"round {round} is not after the last processed round "
                             f"{self._last_round}")
        if not self.is_mask_step(round):
            if client_scores is not None:
                raise ValueError(f"client_scores given for round {round}, not a mask step")
            self._last_round = round
            return None
        sparsity = self.step_sparsity(round)
        scores = self._scores(global_params, client_scores)
        masks = self._new_masks(scores, sparsity, monotone=self.phase(round) == "prune")
        self._mask_id = f"m{round}-{sparsity:.3f}-{_masks.mask_digest(masks)}"
        self._masks, self._sparsity, self._last_round = masks, sparsity, round
        return self._mask_id, dict(masks)

    def _scores(self, params: Mapping[str, np.ndarray],
                client_scores: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        if self._config.scheme == "client-scores":
            if client_scores is None:
                raise ValueError("client_scores are required on mask steps of 'client-scores'")
            return checked_scores(client_scores, self._score_shapes)
        if client_scores is not None:
            raise ValueError("client_scores must be None with scheme 'server-mask'")
        return {name: np.asarray(group_scores(w, self._granularities[name]))
                for name, w in checked_params(params, self._shapes).items()}

    def _new_masks(self, scores: Mapping[str, np.ndarray], sparsity: float, *,
                   monotone: bool) -> Masks:
        prev = self._masks if monotone else None
        if prev is not None:  # pruned groups score 0 so the new mask stays inside the old
            scores = {name: s * _masks.kept_groups(prev[name], self._granularities[name])
                      for name, s in scores.items()}
        masks = _masks.allocate(scores, sparsity, allocation=self._config.allocation,
                                granularities=self._granularities, shapes=self._shapes)
        if prev is not None:
            masks = {name: m & prev[name] for name, m in masks.items()}
        return _masks.frozen(masks)

    def achieved_sparsity(self, masks: Mapping[str, np.ndarray] | None) -> float:
        """Fraction of pruned entries over all prunable tensors (``None`` = dense = 0)."""
        if masks is None:
            return 0.0
        if set(masks) != set(self._shapes):
            raise ValueError(f"masks must cover exactly the prunable tensors "
                             f"{sorted(self._shapes)}")
        pruned = total = 0
        for name, shape in self._shapes.items():
            mask = np.asarray(masks[name])
            if mask.shape != shape or mask.dtype != np.bool_:
                raise ValueError(f"tensor {name!r}: mask must be bool{shape}, got "
                                 f"{mask.dtype}{mask.shape}")
            pruned += int(mask.size - np.count_nonzero(mask))
            total += mask.size
        return pruned / total if total else 0.0

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (masks as base64 bit strings); see ``load_state_dict``."""
        return controller_state(config=self._config, shapes=self._shapes,
                                last_round=self._last_round, sparsity=self._sparsity,
                                mask_id=self._mask_id, masks=self._masks)

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output; rejects another mechanism, a missing key, a
        different configuration or model, or masks that do not match their id. Nothing
        changes unless the whole state is valid."""
        s = parse_controller_state(d, config=self._config, shapes=self._shapes)
        self._last_round, self._sparsity = s.last_round, s.sparsity
        self._mask_id, self._masks = s.mask_id, s.masks
