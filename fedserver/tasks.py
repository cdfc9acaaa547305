"""Builds the Task message a client receives from a state-machine decision."""

from __future__ import annotations

import time
from collections.abc import Callable

from fedcore.model_codec import Encoding
from fedcore.pb import coordinator_pb2 as cpb
from fedserver.config import ServerConfig
from fedserver.round_state import Assignment, Shutdown, StepKind, Wait
from fedserver.strategy import Strategy


class TaskFactory:
    def __init__(self, config: ServerConfig, strategy: Strategy, *, run_id: str,
                 wants_scores: Callable[[int], bool], score_granularity: dict[str, str],
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._strategy = strategy
        self._run_id = run_id
        self._wants_scores = wants_scores
        self._score_granularity = score_granularity
        self._clock = clock
        wire = config.wire
        self._uplink = Encoding(wire.uplink, wire.clusters, wire.zstd).to_proto()

    def build(self, decision: Assignment | Wait | Shutdown) -> cpb.Task:
        if isinstance(decision, Shutdown):
            return cpb.Task(kind=cpb.TASK_KIND_SHUTDOWN, run_id=self._run_id)
        if isinstance(decision, Wait):
            return cpb.Task(kind=cpb.TASK_KIND_WAIT, run_id=self._run_id,
                            retry_after_ms=int(decision.retry_after_s * 1000))
        deadline_unix = time.time() + (decision.deadline - self._clock())
        task = cpb.Task(task_id=decision.task_id, run_id=self._run_id, round=decision.round,
                        model_version=decision.version, mask_id=decision.mask_id,
                        deadline_unix_ms=int(deadline_unix * 1000),
                        model_name=self._config.training.model)
        if decision.kind is StepKind.TRAIN:
            task.kind = cpb.TASK_KIND_TRAIN
            task.train.CopyFrom(self._train_instructions(decision.round))
            task.update_encoding.CopyFrom(self._uplink)
        else:
            task.kind = cpb.TASK_KIND_EVALUATE
            task.evaluate.batch_size = self._config.evaluation.batch_size
        return task

    def _train_instructions(self, round_: int) -> cpb.TrainInstructions:
        t = self._config.training
        scores = self._wants_scores(round_)
        return cpb.TrainInstructions(
            local_epochs=t.local_epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
            momentum=t.momentum, weight_decay=t.weight_decay,
            proximal_mu=self._strategy.proximal_mu, compute_scores=scores,
            score_kind=self._config.pruning.score_kind if scores else "",
            score_granularity=self._score_granularity if scores else {})
