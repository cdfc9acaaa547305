"""The seam for multi-step protocols inside a round (secure aggregation is the first).

A round program may carry a :class:`StepProtocol`. It contributes the phases that replace
the round's TRAIN phase (:meth:`StepProtocol.phases`) and three hooks the coordinator calls
under its lock, so the coordinator only dispatches:

* ``task_step(step, client_id, instructions, run_id=...)`` when a client of a protocol
  phase gets its task: the :class:`StepPayload` that goes into ``Task.step``;
* ``handle(step, client_id, payload)`` for a ``Step`` RPC that the state machine has
  already validated (task, client, round, deadline, kind): it validates the payload and
  records it, or raises (``InvalidUpdate`` -> INVALID_ARGUMENT) and changes nothing. Its
  :class:`StepOutcome` may carry an update to fold into the round's aggregator;
* ``phase_closed(closed)`` after a protocol phase closed: returns the closed step, marked
  failed if the protocol cannot go on (the round then fails, the model unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from fedcore.pb import coordinator_pb2 as cpb
from fedserver.config import RoundConfig
from fedserver.round_plan import Phase, PhaseKind

if TYPE_CHECKING:
    from fedserver.instructions import RoundInstructions
    from fedserver.round_state import ClosedStep, Step
    from fedserver.updates import DecodedUpdate

STEP_TASK_KINDS = {
    PhaseKind.ADVERTISE_KEYS: cpb.TASK_KIND_ADVERTISE_KEYS,
    PhaseKind.SHARE_KEYS: cpb.TASK_KIND_SHARE_KEYS,
    PhaseKind.MASKED_TRAIN: cpb.TASK_KIND_MASKED_TRAIN,
    PhaseKind.UNMASK: cpb.TASK_KIND_UNMASK,
}
PHASE_OF_TASK_KIND = {v: k for k, v in STEP_TASK_KINDS.items()}


@dataclass(frozen=True)
class StepPayload:
    """The server's half of one step (``ProtocolStep`` on the wire)."""

    protocol: str
    payload: bytes
    threshold: int

    def to_proto(self) -> cpb.ProtocolStep:
        return cpb.ProtocolStep(protocol=self.protocol, payload=self.payload,
                                threshold=self.threshold)


@dataclass(frozen=True)
class StepOutcome:
    """What an accepted step brings to the round: an update to fold (masked input), with
    the examples the client claims and the metrics it reported."""

    update: DecodedUpdate | None = None
    num_examples: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class StepProtocol(Protocol):
    name: str

    @property
    def kinds(self) -> frozenset[PhaseKind]: ...
    def phases(self, config: RoundConfig) -> tuple[Phase, ...]: ...
    def task_step(self, step: Step, client_id: str, instructions: RoundInstructions, *,
                  run_id: str) -> StepPayload: ...
    def handle(self, step: Step, client_id: str, payload: bytes) -> StepOutcome: ...
    def phase_closed(self, closed: ClosedStep) -> ClosedStep: ...
