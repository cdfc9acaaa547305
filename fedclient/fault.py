"""Simulated crashes for dropout experiments and tests (``[fault]``).

``die_at`` names a step task kind (``advertise_keys``, ``share_keys``, ``masked_train``,
``unmask``, or ``train``); the first time the client receives such a task in round
``die_from_round`` or later (so a client that missed that round's cohort still dies) the
process sends itself SIGKILL before doing anything with it: no clean-up, no goodbye,
exactly like a machine losing power. Empty: never.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

from fedcore.pb import coordinator_pb2 as cpb

log = logging.getLogger("fedclient.fault")
DIE_AT = {"": None, "train": cpb.TASK_KIND_TRAIN,
          "advertise_keys": cpb.TASK_KIND_ADVERTISE_KEYS,
          "share_keys": cpb.TASK_KIND_SHARE_KEYS,
          "masked_train": cpb.TASK_KIND_MASKED_TRAIN, "unmask": cpb.TASK_KIND_UNMASK}


@dataclass(frozen=True)
class FaultConfig:
    die_at: str = ""
    die_from_round: int = 1

    def __post_init__(self) -> None:
        if self.die_at not in DIE_AT:
            raise ValueError(f"fault.die_at: must be one of {sorted(DIE_AT)}")
        if self.die_from_round < 1:
            raise ValueError("fault.die_from_round: must be >= 1")

    def kills(self, task: cpb.Task) -> bool:
        kind = DIE_AT[self.die_at]
        return kind is not None and task.kind == kind and task.round >= self.die_from_round


def die_if_due(fault: FaultConfig, task: cpb.Task) -> None:
    if fault.kills(task):
        log.warning("fault injection: SIGKILL on receiving task kind %d of round %d",
                    task.kind, task.round)
        os.kill(os.getpid(), signal.SIGKILL)
