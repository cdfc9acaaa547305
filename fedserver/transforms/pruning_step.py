"""Pruning step: the server-owned mask moves after aggregation (federated pruning).

Wraps :class:`fedserver.pruning.controller.PruningController`. Per round it tells clients
the mask to train under and, on client-scores mask steps, asks for grouped importance
scores, which a side aggregator folds (:mod:`fedserver.aggregators.side`). After the
optimizer step it publishes the controller's mask as the model's support and zeroes the
pruned weights, so the global model is always exactly zero outside its masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedserver.aggregators.base import Aggregator
from fedserver.aggregators.side import SideAggregator
from fedserver.model_state import ModelState
from fedserver.pruning.controller import PruningController
from fedserver.transforms.base import RoundResult

SCORES = "scores"


class PruningStep:
    name = "pruning"

    def __init__(self, controller: PruningController) -> None:
        self.controller = controller

    def instructions(self, round: int) -> dict[str, Any]:
        mask_id, masks = self.controller.mask_for_training(round)
        out: dict[str, Any] = {"mask_id": mask_id, "masks": masks,
                               "client_training": self.controller.config.client_training}
        if self.controller.wants_client_scores(round):
            out.update(compute_scores=True, score_kind=self.controller.config.score_kind,
                       score_granularity=self.controller.score_granularities())
        return out

    def side_aggregators(self, round: int) -> dict[str, Aggregator]:
        if not self.controller.wants_client_scores(round):
            return {}
        cfg = self.controller.config
        return {SCORES: SideAggregator(key=SCORES, name=cfg.combine,
                                       shapes=self.controller.score_shapes(),
                                       make_combiner=lambda: self.controller.new_combiner(round))}

    def admits(self, round: int) -> str | None:
        return None

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        update = self.controller.update_after_aggregation(round, model.params,
                                                          result.sides.get(SCORES))
        mask_id, masks = self.controller.current()
        params = model.params
        if masks:
            params = {n: (np.where(masks[n], p, 0).astype(np.float32) if n in masks else p)
                      for n, p in params.items()}
        measurements = {"new_mask": update is not None,
                        "sparsity": self.controller.achieved_sparsity(masks)}
        return model.replace(params=params, mask_id=mask_id, masks=masks), measurements

    def state_dict(self) -> dict[str, Any]:
        return self.controller.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state)

    def get_config(self) -> dict[str, Any]:
        from fedcore import config as config_io

        config = config_io.to_dict(self.controller.config)
        config.pop("client_training")  # how clients compute, not what (PruningConfig)
        return {"name": self.name, **config}
