"""Builds the Task message a client receives from a state-machine decision.

Everything round-specific comes from the round's :class:`RoundInstructions` (merged from
the program's transforms), so a new per-round instruction needs no change here beyond the
proto field it fills.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fedcore.pb import coordinator_pb2 as cpb
from fedserver.config import ServerConfig
from fedserver.instructions import RoundInstructions
from fedserver.round_plan import PhaseKind
from fedserver.round_state import Assignment, Shutdown, Wait
from fedserver.step_protocol import STEP_TASK_KINDS

_TASK_KINDS = {PhaseKind.TRAIN: cpb.TASK_KIND_TRAIN, PhaseKind.EVALUATE: cpb.TASK_KIND_EVALUATE,
               **STEP_TASK_KINDS}
_TRAINING = (PhaseKind.TRAIN, PhaseKind.MASKED_TRAIN)


class TaskFactory:
    def __init__(self, config: ServerConfig, *, run_id: str,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._run_id = run_id
        self._clock = clock

    def build(self, decision: Assignment | Wait | Shutdown,
              instr: RoundInstructions) -> cpb.Task:
        """The Task for ``decision``; ``instr`` are the instructions of its round."""
        if isinstance(decision, Shutdown):
            return cpb.Task(kind=cpb.TASK_KIND_SHUTDOWN, run_id=self._run_id)
        if isinstance(decision, Wait):
            return cpb.Task(kind=cpb.TASK_KIND_WAIT, run_id=self._run_id,
                            retry_after_ms=int(decision.retry_after_s * 1000))
        deadline_unix = time.time() + (decision.deadline - self._clock())
        task = cpb.Task(kind=_TASK_KINDS[decision.kind], task_id=decision.task_id,
                        run_id=self._run_id, round=decision.round,
                        model_version=decision.version, mask_id=decision.mask_id,
                        deadline_unix_ms=int(deadline_unix * 1000),
                        model_name=self._config.training.model)
        if decision.kind in _TRAINING:
            task.train.CopyFrom(self._train_instructions(instr))
            task.update_encoding.CopyFrom(instr.encoding.to_proto())
        elif decision.kind is PhaseKind.EVALUATE:
            task.evaluate.batch_size = self._config.evaluation.batch_size
            task.evaluate.personal_layers.extend(instr.personal_layers)
            task.evaluate.finetune_epochs = instr.finetune_epochs
            if instr.finetune_epochs:  # the fine-tuning recipe is the training recipe
                task.train.CopyFrom(self._train_instructions(instr))
        if decision.step is not None:
            task.step.CopyFrom(decision.step.to_proto())
        return task

    def _train_instructions(self, instr: RoundInstructions) -> cpb.TrainInstructions:
        t = self._config.training
        return cpb.TrainInstructions(
            local_epochs=t.local_epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
            momentum=t.momentum, weight_decay=t.weight_decay, proximal_mu=instr.proximal_mu,
            compute_scores=instr.compute_scores, score_kind=instr.score_kind,
            score_granularity=instr.score_granularity, clip_norm=instr.clip_norm,
            noise_stddev=instr.client_noise_stddev, personal_layers=instr.personal_layers,
            report_initial_loss=instr.report_initial_loss, client_training=instr.client_training,
            clusters=instr.clusters, cluster_epochs=instr.cluster_epochs,
            centroid_learning_rate=instr.centroid_learning_rate,
            report_representation=instr.report_representation,
            representation_dim=instr.representation_dim,
            representation_seed=instr.representation_seed)
