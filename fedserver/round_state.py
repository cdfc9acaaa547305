"""The round state machine: who gets which task, when a phase closes, and why.

Plain Python with an injected clock, so unit tests drive it with a fake clock and no
network. A run is a sequence of rounds, each a plan of phases
(:class:`fedserver.round_plan.RoundPlan`); a *step* is one phase of one round. A step goes
through selection (a ``sample`` cohort draws from the clients waiting in a ``Round``
long-poll, or with ``round.selection`` = ``poisson`` / ``uniform`` from the whole
registered population; a ``survivors`` cohort is the previous phase's contributors), collection (each
selected client gets one task; results arrive), and closing (enough results, or the
deadline). The coordinator reacts to a closed step and then calls :meth:`start_next`; a
failed phase ends its round. ``ClosedStep.ends_round`` tells the coordinator when the
round's aggregate is due (the model changes only after the last phase).

Invariants:
* With ``selection = "waiting"`` only clients waiting right now are selected, so a client
  that died is not picked again; a population draw may pick a client that is gone, which
  the over-selection, quorum and deadline absorb.
* A task id is bound to one client, one step and one model version; results for anything
  else are rejected with a :class:`Rejection` naming the reason, and change nothing.
* Each (client, task) counts at most once; a retried identical result is a duplicate.
* A step never waits past its deadline; the coordinator schedules wake-ups with
  :meth:`next_deadline` instead of polling.
* A step's selection timeout counts from its first waiting client
  (:attr:`Step.first_waiting_at`), not from when it opened: round 1 after a slow start-up
  (or the first round after a restart) waits the full timeout for its cohort, whatever the
  time the coordinator and the clients took to come up.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from fedserver.cohort_sampling import poisson_cohort, uniform_cohort
from fedserver.config import RoundConfig
from fedserver.round_plan import Phase, PhaseKind, RoundPlan
from fedserver.step_protocol import StepPayload


@dataclass(frozen=True)
class Assignment:
    kind: PhaseKind
    task_id: str
    round: int
    version: int
    mask_id: str
    deadline: float
    step: StepPayload | None = None  # a protocol phase's payload (filled by the coordinator)


MIN_POLL_INTERVAL_S = 1.0  # fastest a client is told to repeat Round (see Wait.paced)


@dataclass(frozen=True)
class Wait:
    retry_after_s: float

    def paced(self, *, held_s: float) -> Wait:
        """This answer for a check-in that was held ``held_s``: a long-poll that waited
        :data:`MIN_POLL_INTERVAL_S` or more may be repeated at once; a shorter one (the
        client asked ``max_wait_ms = 0``, or the call was cut short) is told to come back
        after the rest of that interval, so a literal client cannot busy-loop."""
        rest = MIN_POLL_INTERVAL_S - held_s
        return self if self.retry_after_s >= rest else Wait(retry_after_s=rest)


@dataclass(frozen=True)
class Shutdown:
    pass


class RejectReason(enum.Enum):
    UNKNOWN_TASK = "unknown task"
    NOT_YOUR_TASK = "task belongs to another client"
    LATE = "step already closed or past its deadline"
    WRONG_ROUND = "wrong round"
    WRONG_KIND = "wrong task kind"
    STALE_VERSION = "stale model version"
    WRONG_MASK = "wrong mask id"
    CONFLICTING_DUPLICATE = "a different result was already accepted for this task"
    TOO_STALE = "update is more server steps behind the model than schedule.max_staleness"


class Rejection(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {detail}")


@dataclass
class Step:
    phase: Phase
    index: int  # position of the phase in its round's plan
    round: int
    version: int
    mask_id: str
    opened_at: float
    selected: frozenset[str] = frozenset()
    selected_at: float | None = None
    deadline: float | None = None
    first_waiting_at: float | None = None  # the selection timeout counts from here
    results: dict[str, bytes] = field(default_factory=dict)  # client -> digest
    # client -> digest of its ReportFailure: it gave its task up and sends no result
    gave_up: dict[str, bytes] = field(default_factory=dict)

    @property
    def kind(self) -> PhaseKind:
        return self.phase.kind

    @property
    def target(self) -> int:
        return self.phase.target

    @property
    def quorum(self) -> int:
        return self.phase.quorum

    def task_id(self, run_id: str, client_id: str) -> str:
        return f"{run_id}/r{self.round}/{self.kind.value}/{client_id}"


@dataclass(frozen=True)
class ClosedStep:
    step: Step
    closed_at: float
    succeeded: bool
    reason: str
    ends_round: bool  # last phase of its round, or a failed one


class RoundStateMachine:
    def __init__(self, config: RoundConfig, *, run_id: str, first_round: int, version: int,
                 mask_id: str = "", clock: Callable[[], float],
                 plan: RoundPlan | None = None,
                 population: Callable[[], Collection[str]] = frozenset) -> None:
        """``population``: the registered client ids (Poisson selection draws from them)."""
        self.config = config
        self._population = population
        self.plan = plan if plan is not None else RoundPlan(config)
        self.run_id = run_id
        self._clock = clock
        # client -> number of its Round calls waiting now: overlapping calls with one id
        # (a client retrying a call it thinks was lost) keep it waiting until the last ends.
        self._waiting: dict[str, int] = {}
        # The last closed step's task ids -> (round, accepted digest or None), so a retried
        # push whose ack was lost is still a duplicate, and anything else for it is late.
        self._closed_tasks: dict[str, tuple[int, bytes | None]] = {}
        self.finished = first_round > self.plan.last_round
        self.step = self._new_step(first_round, 0, version, mask_id, survivors=frozenset())

    # -- availability -------------------------------------------------------------------
    def client_waiting(self, client_id: str) -> None:
        self._waiting[client_id] = self._waiting.get(client_id, 0) + 1
        if self.step.first_waiting_at is None:
            self.step.first_waiting_at = self._clock()

    def client_left(self, client_id: str) -> None:
        left = self._waiting.get(client_id, 0) - 1
        if left > 0:
            self._waiting[client_id] = left
        else:
            self._waiting.pop(client_id, None)

    @property
    def waiting_count(self) -> int:
        """Clients in a long-poll right now (read without the lock by metrics)."""
        return len(self._waiting)

    @property
    def active_count(self) -> int:
        """Selected clients whose result the open step still expects."""
        step = self.step
        return 0 if self.finished else len(step.selected) - len(step.results)

    # -- check-in -----------------------------------------------------------------------
    def poll(self, client_id: str) -> Assignment | Wait | Shutdown:
        """What ``client_id`` (currently waiting) should do now."""
        if self.finished:
            return Shutdown()
        step = self.step
        if step.selected_at is None:
            self._try_select()
        if client_id in step.selected and client_id not in step.results and step.deadline:
            return Assignment(step.kind, step.task_id(self.run_id, client_id), step.round,
                              step.version, step.mask_id, step.deadline)
        return Wait(retry_after_s=0.0)

    def _select(self, step: Step, clients: frozenset[str]) -> None:
        step.selected, step.selected_at = clients, self._clock()
        step.deadline = step.selected_at + step.phase.deadline_s

    def _try_select(self) -> None:
        if self.config.selection != "waiting" and self.step.kind is PhaseKind.TRAIN:
            self._population_select()
            return
        step, now = self.step, self._clock()
        wanted = min(math.ceil(step.target * (1 + self.config.over_selection)), len(self._waiting))
        timed_out = self._selection_timed_out(step, now)
        if wanted < math.ceil(step.target * (1 + self.config.over_selection)) and not (
                timed_out and wanted >= step.quorum):
            return
        rng = random.Random(f"{self.run_id}/{self.config.seed}/{step.round}/{step.kind.value}")
        self._select(step, frozenset(rng.sample(sorted(self._waiting), wanted)))

    def _population_select(self) -> None:
        """Draw from every registered client once ``population`` clients registered (or at
        the selection timeout, with enough of them for the draw); the sampled clients get
        their task when they check in."""
        step, known = self.step, self._population()
        timed_out = self._selection_timed_out(step, self._clock())
        if self.config.selection == "poisson":
            if len(known) >= self.config.population or (timed_out and known):
                self._select(step, poisson_cohort(known, self.config.sampling_rate))
            return
        if len(known) >= self.config.population or (timed_out and len(known) >= step.quorum):
            wanted = math.ceil(step.target * (1 + self.config.over_selection))
            self._select(step, uniform_cohort(known, min(wanted, len(known))))

    def _selection_timeout_at(self, step: Step) -> float | None:
        """None while no client has waited in this step (see the module invariants)."""
        if step.first_waiting_at is None:
            return None
        return step.first_waiting_at + self.config.selection_timeout_s

    def _selection_timed_out(self, step: Step, now: float) -> bool:
        at = self._selection_timeout_at(step)
        return at is not None and now >= at

    # -- results ------------------------------------------------------------------------
    def check_result(self, client_id: str, task_id: str, *, kind: PhaseKind, round: int,
                     version: int | None, mask_id: str | None, digest: bytes) -> bool:
        """Validate a result; True if new, False if an identical duplicate. Raises Rejection."""
        step = self.step
        if task_id != step.task_id(self.run_id, client_id) or client_id not in step.selected:
            if task_id in self._closed_tasks:
                closed_round, accepted = self._closed_tasks[task_id]
                if accepted == digest:
                    return False
                raise Rejection(RejectReason.LATE, f"round {closed_round} closed")
            prefix = step.task_id(self.run_id, "")
            if task_id.startswith(prefix) and task_id[len(prefix):] in step.selected:
                raise Rejection(RejectReason.NOT_YOUR_TASK, task_id)
            raise Rejection(RejectReason.UNKNOWN_TASK, task_id)
        answered = step.results.get(client_id, step.gave_up.get(client_id))
        if answered is not None:  # one answer per task: a result or a failure report
            if answered == digest:
                return False
            raise Rejection(RejectReason.CONFLICTING_DUPLICATE, task_id)
        self._check_fields(kind=kind, round=round, version=version, mask_id=mask_id)
        if step.deadline is not None and self._clock() > step.deadline:
            raise Rejection(RejectReason.LATE, f"deadline of round {step.round} passed")
        return True

    def _check_fields(self, *, kind: PhaseKind, round: int, version: int | None,
                      mask_id: str | None) -> None:
        step = self.step
        if kind is not step.kind:
            raise Rejection(RejectReason.WRONG_KIND, f"expected {step.kind.value}")
        if round != step.round:
            raise Rejection(RejectReason.WRONG_ROUND, f"got {round}, current is {step.round}")
        if version is not None and version != step.version:
            raise Rejection(RejectReason.STALE_VERSION, f"got {version}, current is {step.version}")
        if mask_id is not None and mask_id != step.mask_id:
            raise Rejection(RejectReason.WRONG_MASK, f"got {mask_id!r}, current is {step.mask_id!r}")

    def record_result(self, client_id: str, digest: bytes) -> None:
        """Record a result that :meth:`check_result` accepted (call under the same lock)."""
        self.step.results[client_id] = digest

    def record_failure(self, client_id: str, digest: bytes) -> None:
        """Record a failure report that :meth:`check_result` accepted: the client sends no
        result for this step, so the step need not wait for it."""
        self.step.gave_up[client_id] = digest

    # -- the scheduler seam (fedserver.schedules): what differs under asynchronous modes --
    def task_round(self, client_id: str, task_id: str) -> int:
        """The round of ``client_id``'s open task ``task_id``, whose model is the current
        one; LookupError for any other task."""
        step = self.step
        if self.finished or client_id not in step.selected \
                or task_id != step.task_id(self.run_id, client_id):
            raise LookupError(f"task {task_id!r} is not open for client {client_id!r}")
        return step.round

    def folding_round(self, task_round: int) -> int:
        """The round whose aggregate a result of a ``task_round`` task folds into: its own."""
        return task_round

    def result_reports(self, client_id: str) -> dict[str, float]:
        """Scalars the scheduler adds to an accepted result's contribution: none."""
        return {}

    # -- closing ------------------------------------------------------------------------
    def close_if_due(self) -> ClosedStep | None:
        """Close the step when it has enough results or its deadline passed."""
        if self.finished:
            return None
        step, now = self.step, self._clock()
        if step.selected_at is None:
            if self._selection_timed_out(step, now):
                self._try_select()
            return None
        if not step.selected:
            return self._close(False, "empty cohort (nobody was sampled)")
        if len(step.results) >= step.target or len(step.results) == len(step.selected):
            return self._close(True, "all results in")
        if step.gave_up and len(step.results) + len(step.gave_up) >= len(step.selected):
            # nobody left to wait for: the deadline would only add latency
            ok = len(step.results) >= step.quorum
            tail = f"{len(step.gave_up)} gave up"
            return self._close(ok, f"every client answered ({tail})" if ok else
                               f"every client answered: {len(step.results)} < quorum "
                               f"{step.quorum} ({tail})")
        if step.deadline is not None and now >= step.deadline:
            ok = len(step.results) >= step.quorum
            return self._close(ok, "deadline" if ok else
                               f"deadline with {len(step.results)} < quorum {step.quorum}")
        return None

    def _close(self, succeeded: bool, reason: str) -> ClosedStep:
        step = self.step
        self._closed_tasks = {
            step.task_id(self.run_id, c): (step.round, step.results.get(c, step.gave_up.get(c)))
            for c in step.selected}
        last = step.index == len(self.plan.phases(step.round)) - 1
        return ClosedStep(step, self._clock(), succeeded, reason,
                          ends_round=last or (not succeeded and step.phase.required))

    def upcoming(self, closed: ClosedStep) -> tuple[int, int] | None:
        """The (round, phase index) of the step after ``closed``; None when the run ends."""
        rnd = closed.step.round
        if not closed.ends_round:
            return rnd, closed.step.index + 1
        for nxt in range(rnd + 1, self.plan.last_round + 1):
            if self.plan.phases(nxt):
                return nxt, 0
        return None

    def start_next(self, closed: ClosedStep, *, version: int, mask_id: str) -> None:
        """Open the step after ``closed`` (see :meth:`upcoming`), or finish the run."""
        upcoming = self.upcoming(closed)
        if upcoming is None:
            self.finished = True
        else:
            self.step = self._new_step(*upcoming, version, mask_id,
                                       survivors=frozenset(closed.step.results))

    def _new_step(self, rnd: int, index: int, version: int, mask_id: str, *,
                  survivors: frozenset[str]) -> Step:
        # a restart past the plan's end (finished): the last round's plan, never run
        phases = self.plan.phases(min(rnd, self.plan.last_round))
        phase = phases[min(index, len(phases) - 1)]
        now = self._clock()
        step = Step(phase=phase, index=index, round=rnd, version=version, mask_id=mask_id,
                    opened_at=now, first_waiting_at=now if self._waiting else None)
        if phase.cohort == "survivors":
            self._select(step, survivors)
        return step

    def next_deadline(self) -> float | None:
        """The next clock time at which :meth:`close_if_due` may act without new input."""
        if self.finished:
            return None
        step = self.step
        if step.selected_at is None:
            at = self._selection_timeout_at(step)
            return at if at is not None and at > self._clock() else None
        return step.deadline
