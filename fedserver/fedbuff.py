"""FedBuff: asynchronous buffered aggregation as a scheduler (Nguyen et al., AISTATS 2022).

The synchronous state machine (:mod:`fedserver.round_state`) selects a cohort and waits for
it; FedBuff never waits for anyone. Every client that checks in gets a TRAIN task on the
current model at once; every accepted result is folded into the open buffer; when the
buffer holds ``schedule.buffer_size`` (K) results, the coordinator closes it like a round
(aggregate with staleness weights, server step, checkpoint, record) and the next buffer
opens on the new model. A "round" in the store, the report and the checkpoints is one
such server step, so ``round.rounds`` counts server steps and resuming after a kill
restarts from the last checkpointed step exactly as a synchronous run does (results folded
into an unfinished buffer are lost with it and never applied twice).

The staleness of a result is ``version of the model now - version it was trained on``; the
scheduler reports it with the contribution (:meth:`result_reports`) and the
``StalenessWeighted`` aggregator wrapper (:mod:`fedserver.aggregators.staleness`) scales by
it. Invariants:

* A client holds at most one open task; asking again returns it while it is on the
  current model, a client asking again after the model moved gets a new one (it dropped
  its old task: a daemon checks in only between tasks).
* A client contributes at most once per buffer: after its result is accepted it is told
  WAIT until the buffer closes (the same model and round would give the same update).
* A result more than ``schedule.max_staleness`` steps old is refused with
  :attr:`RejectReason.TOO_STALE` (FAILED_PRECONDITION, reason ``too_stale``); past its
  task's deadline (``round.deadline_s`` from issue) with LATE; every refusal changes
  nothing. A retried identical result is a duplicate.
* Memory is O(clients): one open task and one last accepted (task, digest) per client.

The interface is the synchronous state machine's (see :class:`fedserver.schedules.Scheduler`),
so the coordinator drives both alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from fedserver.config import RoundConfig, ScheduleConfig
from fedserver.round_plan import Phase, PhaseKind, RoundPlan
from fedserver.round_state import (
    Assignment,
    ClosedStep,
    Rejection,
    RejectReason,
    Shutdown,
    Step,
    Wait,
)


class FedBuffScheduler:
    def __init__(self, config: RoundConfig, schedule: ScheduleConfig, *, run_id: str,
                 first_round: int, version: int, mask_id: str, clock: Callable[[], float],
                 plan: RoundPlan) -> None:
        self.config, self.schedule, self.plan, self.run_id = config, schedule, plan, run_id
        self._clock = clock
        self._phase = Phase(PhaseKind.TRAIN, target=schedule.buffer_size,
                            quorum=schedule.buffer_size, deadline_s=config.deadline_s)
        self._waiting: Counter[str] = Counter()
        self._tasks: dict[str, Assignment] = {}  # client -> its open task
        self._owners: dict[str, str] = {}  # open task id -> client
        self._accepted: dict[str, tuple[str, bytes]] = {}  # client -> last (task id, digest)
        self._contributed: dict[str, int] = {}  # client -> round of its last accepted result
        self.finished = first_round > plan.last_round
        self.step = self._new_step(first_round, version, mask_id)

    def _new_step(self, rnd: int, version: int, mask_id: str) -> Step:
        now = self._clock()
        return Step(phase=self._phase, index=0, round=rnd, version=version, mask_id=mask_id,
                    opened_at=now, selected_at=now)

    # -- availability -------------------------------------------------------------------
    def client_waiting(self, client_id: str) -> None:
        self._waiting[client_id] += 1

    def client_left(self, client_id: str) -> None:
        self._waiting[client_id] -= 1
        if self._waiting[client_id] <= 0:
            del self._waiting[client_id]

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    @property
    def active_count(self) -> int:
        """Open tasks: clients training now (on this model or an older one)."""
        return len(self._tasks)

    # -- check-in -----------------------------------------------------------------------
    def poll(self, client_id: str) -> Assignment | Wait | Shutdown:
        if self.finished:
            return Shutdown()
        step, now = self.step, self._clock()
        task = self._tasks.get(client_id)
        if task is not None and task.version == step.version and now <= task.deadline:
            return task
        if self._contributed.get(client_id) == step.round:
            return Wait(retry_after_s=0.0)  # one result per client per buffer
        if task is not None:
            self._owners.pop(task.task_id, None)
        task = Assignment(PhaseKind.TRAIN, step.task_id(self.run_id, client_id), step.round,
                          step.version, step.mask_id, now + self.config.deadline_s)
        self._tasks[client_id], self._owners[task.task_id] = task, client_id
        step.selected = step.selected | {client_id}
        return task

    # -- results ------------------------------------------------------------------------
    def check_result(self, client_id: str, task_id: str, *, kind: PhaseKind, round: int,
                     version: int | None, mask_id: str | None, digest: bytes) -> bool:
        """Validate a result; True if new, False if an identical duplicate. Raises Rejection."""
        last = self._accepted.get(client_id)
        if last is not None and last[0] == task_id:
            if last[1] == digest:
                return False
            raise Rejection(RejectReason.CONFLICTING_DUPLICATE, task_id)
        task = self._tasks.get(client_id)
        if task is None or task.task_id != task_id:
            if task_id in self._owners:
                raise Rejection(RejectReason.NOT_YOUR_TASK, task_id)
            raise Rejection(RejectReason.UNKNOWN_TASK, task_id)
        self._check_fields(task, kind=kind, round=round, version=version, mask_id=mask_id)
        return True

    def _check_fields(self, task: Assignment, *, kind: PhaseKind, round: int,
                      version: int | None, mask_id: str | None) -> None:
        if kind is not PhaseKind.TRAIN:
            raise Rejection(RejectReason.WRONG_KIND, "fedbuff runs train tasks only")
        if round != task.round:
            raise Rejection(RejectReason.WRONG_ROUND, f"got {round}, the task's is {task.round}")
        if version is not None and version != task.version:
            raise Rejection(RejectReason.STALE_VERSION,
                            f"got {version}, the task is for version {task.version}")
        if (mask_id is not None and mask_id != task.mask_id) or task.mask_id != self.step.mask_id:
            raise Rejection(RejectReason.WRONG_MASK, f"got {mask_id!r}, current is "
                            f"{self.step.mask_id!r}")
        staleness = self.step.version - task.version
        if staleness > self.schedule.max_staleness:
            raise Rejection(RejectReason.TOO_STALE,
                            f"trained on version {task.version}, the model is at "
                            f"{self.step.version}: staleness {staleness} > "
                            f"schedule.max_staleness {self.schedule.max_staleness}")
        if self._clock() > task.deadline:
            raise Rejection(RejectReason.LATE, f"the deadline of task {task.task_id} passed")

    def record_result(self, client_id: str, digest: bytes) -> None:
        """Record a result that :meth:`check_result` accepted (call under the same lock)."""
        task = self._tasks.pop(client_id)
        self._owners.pop(task.task_id, None)
        self._accepted[client_id] = (task.task_id, digest)
        self._contributed[client_id] = self.step.round
        self.step.results[client_id] = digest

    def record_failure(self, client_id: str, digest: bytes) -> None:
        """The client gave its task up: the task ends, and like a result it is the client's
        one answer in this buffer (it trains again from the next); a repeated report is a
        duplicate, a later result for the task a conflict."""
        task = self._tasks.pop(client_id)
        self._owners.pop(task.task_id, None)
        self._accepted[client_id] = (task.task_id, digest)
        self._contributed[client_id] = self.step.round

    def task_round(self, client_id: str, task_id: str) -> int:
        """The round of an open task on the current model (older models are not served:
        the client drops the task and checks in again)."""
        task = self._tasks.get(client_id)
        if self.finished or task is None or task.task_id != task_id:
            raise LookupError(f"task {task_id!r} is not open for client {client_id!r}")
        if task.version != self.step.version:
            raise LookupError(f"task {task_id!r} was for model version {task.version}, now "
                              f"{self.step.version}: check in again")
        return task.round

    def folding_round(self, task_round: int) -> int:
        """Every accepted result folds into the open buffer, whatever its task's round."""
        return self.step.round if 1 <= task_round <= self.step.round else task_round

    def result_reports(self, client_id: str) -> dict[str, float]:
        """The staleness of ``client_id``'s open task, folded with its result."""
        return {"staleness": float(self.step.version - self._tasks[client_id].version)}

    # -- closing ------------------------------------------------------------------------
    def close_if_due(self) -> ClosedStep | None:
        if self.finished:
            return None
        self._expire()
        step = self.step
        if len(step.results) >= step.target:
            return ClosedStep(step, self._clock(), True,
                              f"buffer of {step.target} updates full", ends_round=True)
        return None

    def _expire(self) -> None:
        """Forget tasks past their deadline (their results would be refused as late)."""
        now = self._clock()
        for client, task in list(self._tasks.items()):
            if now > task.deadline:
                del self._tasks[client]
                self._owners.pop(task.task_id, None)

    def upcoming(self, closed: ClosedStep) -> tuple[int, int] | None:
        nxt = closed.step.round + 1
        return (nxt, 0) if nxt <= self.plan.last_round else None

    def start_next(self, closed: ClosedStep, *, version: int, mask_id: str) -> None:
        upcoming = self.upcoming(closed)
        if upcoming is None:
            self.finished = True
        else:
            self.step = self._new_step(upcoming[0], version, mask_id)

    def next_deadline(self) -> float | None:
        """Nothing closes on time alone: a buffer closes when its K-th result arrives."""
        return None
