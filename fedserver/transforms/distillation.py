"""FedCompress's server step: distil the aggregated model into a clustered student.

After the optimizer step the global model is the FedAvg aggregate of the clients'
clustered models -- no longer clustered (an average of clustered models takes many values
per tensor). This transform makes the next broadcast clustered again with little loss:

- teacher = the aggregated model; student = a copy whose clustered tensors
  (:func:`fedcore.weight_clustering.clustered_names` at the schedule's current ``k``) are
  clustered by k-means++-seeded k-means and then trained with hard weight sharing and
  straight-through gradients, under the model's pruning mask;
- loss = temperature-softened KL between teacher and student on an unlabeled server set
  (:mod:`fedcore.unlabeled`: an npz of inputs or W1's procedural strokes), Adam
  (:mod:`fedcore.distillation`); the student replaces the global model.

It also tells the downlink that the broadcast is clustered at ``k``
(``downlink_clusters``), so the model goes out as codebook + packed indices. Metrics:
``distill_agreement`` (top-1 agreement of student and teacher on the unlabeled set after
distillation), ``distill_agreement_clustered`` (of the k-means copy before any step) and
the soft KL of both (``distill_kl``, ``distill_kl_clustered``), so the gain of distilling
over plain post-hoc clustering is visible every round.
Deterministic: the seed is ``(seed, round)``; no state across rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from fedcore.distillation import DistillConfig, agreement, distill
from fedcore.masking import mask_hooks
from fedcore.params import get_parameters, set_parameters
from fedcore.weight_clustering import WeightClustering
from fedserver.cluster_schedule import ClusterSchedule
from fedserver.model_state import ModelState
from fedserver.transforms.base import RoundResult, StatelessTransform


class Distillation(StatelessTransform):
    name = "distillation"

    def __init__(self, schedule: ClusterSchedule, *, build: Callable[[], nn.Module],
                 inputs: np.ndarray, config: DistillConfig, source: str,
                 centroid_learning_rate: float = 1e-3) -> None:
        self.schedule = schedule
        self.build = build
        self.inputs = np.asarray(inputs, dtype=np.float32)
        self.config = config
        self.source = source
        self.centroid_learning_rate = float(centroid_learning_rate)

    def instructions(self, round: int) -> dict[str, Any]:
        return {"downlink_clusters": self.schedule.k}

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        k, seed = self.schedule.k, self.config.seed * 1_000_003 + round
        teacher, student = self.build(), self.build()
        set_parameters(teacher, model.params)
        set_parameters(student, model.params)
        clustering = WeightClustering(clusters=k, masks=model.masks, seed=seed,
                                      centroid_learning_rate=self.centroid_learning_rate)
        hooks = [*mask_hooks(student, model.masks), clustering]
        for hook in hooks:  # the clustered copy before any distillation step
            hook.before_training(student)
        before, kl_before = agreement(student.eval(), teacher.eval(),
                                      torch.from_numpy(self.inputs), self.config.temperature)
        set_parameters(student, model.params)
        outcome = distill(student, teacher, self.inputs, replace(self.config, seed=seed),
                          hooks=hooks)
        params = get_parameters(student)
        return model.replace(params=params), {
            "clusters": k, "metrics": {"distill_agreement": outcome.agreement,
                                       "distill_agreement_clustered": before,
                                       "distill_kl": outcome.kl,
                                       "distill_kl_clustered": kl_before}}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self.config), "source": self.source,
                "examples": int(len(self.inputs)),
                "centroid_learning_rate": self.centroid_learning_rate}
