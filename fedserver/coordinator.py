"""The coordinator: a lock, long-polls, deadlines and dispatch around the round runner.

When the model moves is the scheduler's (``[schedule] mode``, :mod:`fedserver.schedules`:
synchronous rounds or FedBuff); the coordinator drives either through the same interface.

The gRPC servicer calls four entry points: :meth:`check_in` (long-poll for a task),
:meth:`model_payload` (the encoded global model for a task), the push trio
:meth:`begin_push` / :meth:`decode_update` / :meth:`commit_push`, and
:meth:`report_evaluation`. The algorithms live elsewhere: the round state machine decides
who does what and when a phase closes (:mod:`fedserver.round_state`), the round program
and its pure runner decide what an update does to the model (:mod:`fedserver.round_runner`,
built by :mod:`fedserver.presets`). Decoding a pushed update runs outside the lock; an
update is fully validated before it is folded, so a rejected update never touches the
global model or the stored state.

Round close order (atomic): the runner computes the candidate model, the checkpoint is
written, the round record and the report rewrite share one store transaction, and only
then is the candidate published. A failure anywhere on the way (a non-finite aggregate, a
full disk, an I/O error in the checkpoint, the store or the report) rolls every component
back: model, version and store are as before the close, the round is recorded as failed
with the reason when the store takes the write, and the next round runs normally, so a
fault that clears costs exactly the rounds it lasted and a version is never applied twice.

Background work never dies silently: an unexpected error while advancing the state
machine (a bug, since write faults are handled above) stops the coordinator with
:attr:`Coordinator.fatal` set, and ``fedserver`` exits non-zero with that error logged.

Nothing here polls, and no thread waits per client: a long-poll (:meth:`check_in`) is a
coroutine awaiting its own event (:mod:`fedserver.long_poll`), rung only by the state
changes that concern it (a selection rings the selected cohort; a new step or the end of
the run rings everybody), so a round of C clients costs O(C) wake-ups, not O(C^2). The
lock is a plain lock held for microseconds-to-milliseconds of round logic (a round close
holds it longest); a long-poll that finds it taken waits for it on an executor thread, so
the event loop never stalls behind a close. The deadline thread waits on the condition
``_cond`` alone and sleeps exactly until the state machine's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fedcore import config as config_io
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.secrets import redacted
from fedcore.text import clip
from fedserver.aggregators.weighting import reference_examples
from fedserver.broadcast import Broadcast, Held, seeded_init
from fedserver.client_registry import ClientRegistry
from fedserver.config import ServerConfig
from fedserver.instructions import RoundInstructions
from fedserver.long_poll import LongPollWaiters
from fedserver.metrics import CoordinatorMetrics
from fedserver.model_state import (
    KEEP_CHECKPOINTS,
    ModelState,
    remove_checkpoints,
    restore_model_state,
    save_model_state,
)
from fedserver.round_plan import PhaseKind, RoundPlan
from fedserver.round_report import (
    DENSE_MODEL_BYTES,
    RoundTimer,
    dense_model_bytes,
    write_report,
)
from fedserver.round_runner import EvaluationRound, OpenRound, RoundFailed, RoundRunner
from fedserver.round_state import (
    Assignment,
    ClosedStep,
    Rejection,
    RejectReason,
    Shutdown,
    Wait,
)
from fedserver.run_setup import initial_parameters, round_program
from fedserver.schedules import build_scheduler
from fedserver.state_dir import StartMode, open_run_store
from fedserver.status import status_for
from fedserver.step_protocol import PHASE_OF_TASK_KIND
from fedserver.store import RoundRecord, StoreError
from fedserver.task_failures import TaskFailures, reason_name
from fedserver.transforms.evaluation_step import Evaluator
from fedserver.updates import DecodedUpdate, InvalidUpdate, PushTicket

log = logging.getLogger("fedserver.coordinator")
MAX_EXAMPLES = 1 << 40
WRITE_FAULTS = (OSError, StoreError)  # what a full or failing disk raises on the way


class Coordinator:
    def __init__(self, config: ServerConfig, *, clock: Callable[[], float] = time.monotonic,
                 evaluator: Evaluator | None = None, start: StartMode = StartMode()) -> None:
        self.config = config
        self.clock = clock
        self._cond = threading.Condition()
        self._waiters = LongPollWaiters()
        self._stopping = False
        self.fatal: BaseException | None = None  # set when background work died
        # the run's parts first: a config that cannot run is refused before any write
        initial = initial_parameters(config)
        self.program = round_program(config, initial=initial, evaluator=evaluator)
        self.state_dir = config_state_dir(config)
        self.store = open_run_store(self.state_dir, mode=start,
                                    config=config_io.to_dict(redacted(config)),
                                    run_id=uuid.uuid4().hex[:12])
        self.run_id = self.store.ensure_run(uuid.uuid4().hex[:12],
                                           config_io.to_dict(redacted(config)))
        self.runner = RoundRunner(self.program, model=ModelState(params=initial, version=0))
        self.runner.model = restore_model_state(self.state_dir, self.store, initial,
                                                self.runner.components())
        self.store.commit_config_change()  # an accepted change, now that the run resumes
        self._protocol = self.program.protocol  # multi-step rounds (secure aggregation)
        self.plan = RoundPlan(config.round, training=(
            self._protocol.phases(config.round) if self._protocol is not None else None))
        first_round = int(self.store.get_state("last_round", 0)) + 1
        self._clients = ClientRegistry(write=self.store.touch_clients,
                                       registered=self.store.client_ids(),  # earlier starts
                                       on_error=lambda: self.metrics.write_error("clients"))
        self._open_round(first_round)
        self.sm = build_scheduler(config, run_id=self.run_id, first_round=first_round,
                                  version=self.model.version,
                                  mask_id=self.instructions.mask_id, clock=clock,
                                  plan=self.plan, population=self._population)
        self.metrics = CoordinatorMetrics(waiting=lambda: self.sm.waiting_count,
                                          active=lambda: self.sm.active_count)
        self.metrics.model_version.set(self.model.version)
        self._check_admitted(first_round)
        self._timer = RoundTimer(clock)
        self._broadcast = Broadcast(wire=config.wire, init=seeded_init(config, initial),
                                    inline_bytes=config.network.inline_payload_bytes)
        self.store.set_state(DENSE_MODEL_BYTES, dense_model_bytes(initial))
        self._bytes: dict[int, list[int]] = {}
        self._bytes_lock = threading.Lock()
        self.failures = TaskFailures()
        self._deadline_thread = threading.Thread(target=self._deadline_loop, daemon=True,
                                                 name="fedserver-deadlines")
        self._phase_closers = {PhaseKind.TRAIN: self._close_train_phase,
                               PhaseKind.EVALUATE: self._close_evaluation_phase}
        if self._protocol is not None:
            self._phase_closers.update(dict.fromkeys(self._protocol.kinds,
                                                     self._close_protocol_phase))
        log.info("run %s (%s) starting at round %d (model version %d, mask %r)", self.run_id,
                 self.program.name, first_round, self.model.version, self.instructions.mask_id)

    @property
    def model(self) -> ModelState:
        return self.runner.model

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._clients.start()
        self._deadline_thread.start()

    def stop(self) -> None:
        """Abandon the open step (nothing of it was persisted) and wake every waiter.

        Long-polls then answer WAIT; the store stays open for RPCs still in flight until
        :meth:`close`."""
        with self._cond:
            self._stopping = True
            self._wake_everyone()
        if self._deadline_thread.is_alive():
            self._deadline_thread.join(timeout=5)

    def close(self) -> None:
        """Write the last client registrations and release the store; call after the gRPC
        server has drained."""
        self._clients.close()
        self.store.close()

    @property
    def finished(self) -> bool:
        return self.sm.finished

    def wake(self) -> None:
        """Wake the deadline thread and :meth:`wait_finished` (not the long-polls)."""
        with self._cond:
            self._cond.notify_all()

    def _wake_everyone(self) -> None:
        """Call with the lock held: every long-poll and the deadline thread re-check."""
        self._cond.notify_all()
        self._waiters.wake_all()

    def _announce(self, before: tuple[int, int, float | None, bool]) -> None:
        """Call with the lock held after the state machine may have moved: ring whom the
        change concerns (see the module doc); nothing when nothing changed."""
        after = self._state_token()
        if after == before:
            return
        if after[:2] != before[:2] or after[3] != before[3]:
            self._wake_everyone()
        else:  # a selection within the same step
            self._cond.notify_all()
            self._waiters.wake(self.sm.step.selected)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """True once the run is over, the coordinator stopped, or background work died."""
        with self._cond:
            return self._cond.wait_for(lambda: self.sm.finished or self._stopping, timeout)

    # -- check-in ---------------------------------------------------------------------------
    async def check_in(self, client_id: str, *, num_examples: int, max_wait_s: float,
                       ) -> tuple[Assignment | Wait | Shutdown, RoundInstructions]:
        """Long-poll: a task as soon as there is one, or Wait after ``max_wait_s``; with the
        instructions of the decision's round (read under the same lock, so they match).

        A coroutine on the server's event loop: waiting costs one event, no thread. When
        the call is cancelled (the client went away) the client stops counting as waiting."""
        if not 0 <= num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 0..{MAX_EXAMPLES}")
        self._clients.touch(client_id, num_examples)
        began = self.clock()
        until = began + min(max_wait_s, self.config.network.long_poll_s)
        with self._waiters.waiting(client_id) as rung:
            await self._under_lock(self.sm.client_waiting, client_id)
            try:
                while True:
                    rung.clear()  # before polling: a ring after the poll is never lost
                    decision, instructions, stopping = await self._under_lock(
                        self._poll, client_id)
                    remaining = until - self.clock()
                    if not isinstance(decision, Wait) or remaining <= 0:
                        if isinstance(decision, Wait):
                            decision = decision.paced(held_s=self.clock() - began)
                        return decision, instructions
                    if stopping:
                        return Wait(retry_after_s=1.0), instructions
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(rung.wait(), remaining)
            finally:
                with self._cond:  # not awaited: a cancelled call must still leave
                    self.sm.client_left(client_id)

    def _poll(self, client_id: str) -> tuple[Assignment | Wait | Shutdown, RoundInstructions,
                                             bool]:
        before = self._state_token()
        decision = self._with_step(client_id, self.sm.poll(client_id))
        self._announce(before)
        return decision, self.instructions, self._stopping

    def _with_step(self, client_id: str, decision: Assignment | Wait | Shutdown
                   ) -> Assignment | Wait | Shutdown:
        """A protocol phase's task carries the protocol's payload for this client."""
        if (isinstance(decision, Assignment) and self._protocol is not None
                and decision.kind in self._protocol.kinds):
            step = self._protocol.task_step(self.sm.step, client_id, self.instructions,
                                            run_id=self.run_id)
            return dataclasses.replace(decision, step=step)
        return decision

    async def _under_lock(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the lock held, at once when it is free, else on an executor
        thread, so the event loop does not stall while a round close holds the lock."""
        if self._cond.acquire(blocking=False):
            try:
                return fn(*args)
            finally:
                self._cond.release()
        return await asyncio.get_running_loop().run_in_executor(None, self._locked, fn, args)

    def _locked(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        with self._cond:
            return fn(*args)

    def _state_token(self) -> tuple[int, int, float | None, bool]:
        step = self.sm.step
        return step.round, step.index, step.selected_at, self.sm.finished

    def _population(self) -> frozenset[str]:
        """Every client registered in this run (for population-level selection)."""
        return self._clients.population()

    def is_registered(self, client_id: str) -> bool:
        """Whether ``client_id`` checked in before (in this run, any start)."""
        return self._clients.knows(client_id)

    # -- downlink ---------------------------------------------------------------------------
    def model_payload(self, client_id: str, task_id: str, held: Held) -> tuple[bytes, int]:
        """Serialized ModelPayload for an assigned task, and the task's round."""
        with self._cond:
            task_round = self._open_task(client_id, task_id)
            return self._broadcast.payload(self.model, self.instructions, held), task_round

    def task_model(self, client_id: str, task_id: str, held: Held) -> cpb.Task:
        """The model fields of an assigned task (:meth:`Broadcast.task_fields`), merged into
        the task by the servicer."""
        with self._cond:
            self._open_task(client_id, task_id)
            return self._broadcast.task_fields(self.model, self.instructions, held)

    def _open_task(self, client_id: str, task_id: str) -> int:
        """The round of the open task ``task_id`` (under the lock), or LookupError: the
        scheduler decides what is open (a synchronous step, or FedBuff's per-client task)."""
        return self.sm.task_round(client_id, task_id)

    # -- uplink -----------------------------------------------------------------------------
    def begin_push(self, client_id: str, header: cpb.UpdateHeader) -> PushTicket | None:
        """Validate a push header; None means an identical update was already accepted."""
        with self._push_outcome(), self._cond:
            if not 0 < header.num_examples <= MAX_EXAMPLES:
                raise InvalidUpdate(f"num_examples must be in 1..{MAX_EXAMPLES}")
            new = self.sm.check_result(
                client_id, header.task_id, kind=PhaseKind.TRAIN, round=header.round,
                version=header.model_version, mask_id=header.mask_id,
                digest=header.stream.sha256)
            if not new:
                self.metrics.update(code="OK", duplicate=True)
                return None
            return PushTicket.for_task(
                self.instructions, client_id=client_id, task_id=header.task_id,
                round=header.round, version=header.model_version,
                num_examples=int(header.num_examples), digest=bytes(header.stream.sha256),
                started=self.clock())

    def decode_update(self, ticket: PushTicket, payload: bytes | memoryview) -> DecodedUpdate:
        """Parse and decode outside the lock (see :func:`fedserver.updates.decode_update`)."""
        with self._cond:
            open_round, folds_into = self._train, self.sm.folding_round(ticket.round)
        with self._push_outcome():
            if open_round is None or open_round.round != folds_into:
                raise InvalidUpdate(f"round {ticket.round} is not collecting updates")
            return self.runner.decode(open_round, ticket, payload)

    def commit_push(self, ticket: PushTicket, update: DecodedUpdate,
                    metrics: dict[str, float]) -> bool:
        """Fold a decoded update into the round; False if it turned out to be a duplicate."""
        with self._cond, self._push_outcome():
            new = self.sm.check_result(ticket.client_id, ticket.task_id, kind=PhaseKind.TRAIN,
                                       round=ticket.round, version=ticket.version,
                                       mask_id=ticket.mask_id, digest=ticket.digest)
            self.metrics.update(code="OK", duplicate=not new)
            if not new:
                return False
            assert self._train is not None
            assert self._train.round == self.sm.folding_round(ticket.round)
            self._fix_weight_cap(self._train)
            self.runner.add(self._train, ticket.client_id, update,
                            claimed_examples=ticket.num_examples,
                            metrics={**metrics, "push_seconds": self.clock() - ticket.started,
                                     **self.sm.result_reports(ticket.client_id)})
            self.sm.record_result(ticket.client_id, ticket.digest)
            self._advance_locked()
            return True

    @contextmanager
    def _push_outcome(self) -> Iterator[None]:
        """Count a push refused by the exception leaving this block, by its status code."""
        try:
            yield
        except Exception as exc:
            code = status_for(exc)
            self.metrics.update(code=code.name if code is not None else "UNKNOWN")
            raise

    def report_evaluation(self, client_id: str, report: cpb.EvaluationReport) -> bool:
        metrics = dict(report.metrics)
        if not 0 < report.num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 1..{MAX_EXAMPLES}")
        if len(metrics) > 64 or not all(np.isfinite(v) for v in metrics.values()):
            raise InvalidUpdate("evaluation metrics must be at most 64 finite values")
        digest = hashlib.sha256(report.SerializeToString(deterministic=True)).digest()
        with self._cond:
            new = self.sm.check_result(client_id, report.task_id, kind=PhaseKind.EVALUATE,
                                       round=report.round, version=None, mask_id=None,
                                       digest=digest)
            if not new:
                return False
            self._fix_weight_cap(self._evaluation)
            self.runner.add_evaluation(self._evaluation, client_id, metrics,
                                       claimed_examples=int(report.num_examples))
            self.sm.record_result(client_id, digest)
            self._advance_locked()
            return True

    def protocol_step(self, client_id: str, request: cpb.StepRequest) -> bool:
        """Answer to a protocol-step task (``Step`` RPC); False for an identical retry.

        The task is validated like any result (unknown, another client's, late), then its
        kind against the open phase (TRAIN and EVALUATE take their results through
        PushUpdate / ReportEvaluation: WRONG_KIND), then the round program's step protocol
        validates and records the payload (:mod:`fedserver.step_protocol`); an update it
        yields (a masked input) is folded like a pushed one. A refused step changes nothing."""
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        with self._cond:
            step = self.sm.step
            new = self.sm.check_result(client_id, request.task_id, kind=step.kind,
                                       round=request.round, version=None, mask_id=None,
                                       digest=digest)
            if self._protocol is None or step.kind not in self._protocol.kinds:
                raise Rejection(RejectReason.WRONG_KIND, f"the open phase is "
                                f"{step.kind.value}, which takes no protocol steps")
            if PHASE_OF_TASK_KIND.get(request.kind) is not step.kind:
                raise Rejection(RejectReason.WRONG_KIND, f"expected {step.kind.value}")
            if not new:
                return False
            outcome = self._protocol.handle(step, client_id, request.payload)
            if outcome.update is not None:
                assert self._train is not None and self._train.round == step.round
                self._fix_weight_cap(self._train)
                self.runner.add(self._train, client_id, outcome.update,
                                claimed_examples=outcome.num_examples, metrics=outcome.metrics)
            self.sm.record_result(client_id, digest)
            self._advance_locked()
            return True

    def report_failure(self, client_id: str, failure: cpb.TaskFailure) -> bool:
        """A client gives up its task, saying why (:mod:`fedserver.task_failures`); False
        if this failure was already reported. A step whose every selected client has
        answered (result or failure) closes now rather than at its deadline."""
        reason = reason_name(failure)
        digest = hashlib.sha256(failure.SerializeToString(deterministic=True)).digest()
        with self._cond:
            step = self.sm.step
            new = self.sm.check_result(client_id, failure.task_id, kind=step.kind,
                                       round=failure.round, version=None, mask_id=None,
                                       digest=digest)
            if new:
                self.failures.record(step.round, client_id, reason)
                self.sm.record_failure(client_id, digest)
                self._advance_locked()  # it may have been the last answer the step waited for
        if new:
            self.metrics.client_failure(reason)
            log.warning("round %d: client %s gave up its %s task: %s: %s", step.round,
                        client_id, step.kind.value, reason, clip(failure.detail))
        return new

    def add_bytes(self, round_: int, *, up: int = 0, down: int = 0) -> None:
        """Credit wire bytes to a round; callers pass only rounds of validated tasks (a
        result's bytes go to the round it folds into)."""
        round_ = self.sm.folding_round(round_)
        with self._bytes_lock:
            counts = self._bytes.setdefault(round_, [0, 0])
            counts[0] += up
            counts[1] += down
        self.metrics.wire_bytes(up=up, down=down)

    def current_round(self) -> int:
        return self.sm.step.round

    # -- rounds and phases --------------------------------------------------------------------
    def _open_round(self, round_: int) -> None:
        """Fresh accumulators and instructions for ``round_`` (runs before its first phase)."""
        self._train: OpenRound | None = (
            self.runner.open(round_) if self.plan.trains(round_) else None)
        self.instructions = (self._train.instructions if self._train is not None
                             else self.program.instructions(round_))
        self._evaluation: EvaluationRound = self.runner.open_evaluation(round_)
        self._round_opened = self.clock()

    def _fix_weight_cap(self, open_round: OpenRound | EvaluationRound) -> None:
        """At a round's first result its cohort has declared its sizes (at check-in)."""
        if open_round.weight_cap is None:
            self.runner.fix_weight_cap(open_round, reference_examples(self._clients.examples()))

    def _deadline_loop(self) -> None:
        with self._cond:
            while not self._stopping and not self.sm.finished:
                at = self.sm.next_deadline()
                self._cond.wait(None if at is None else max(0.0, at - self.clock()))
                if not self._stopping:
                    try:
                        self._advance_locked()
                    except Exception:  # logged and made fatal in _advance_locked
                        return

    def _advance_locked(self) -> None:
        """Close due steps and open the next ones; an unexpected error here leaves the state
        machine between two steps (closing again would apply a round twice), so it stops
        the coordinator: :attr:`fatal` is set, waiters wake, and ``serve`` exits non-zero."""
        if self.fatal is not None:
            raise RuntimeError("the coordinator stopped after a fatal error") from self.fatal
        try:
            self._advance_steps()
        except Exception as exc:
            log.critical("coordinator stopping after an unexpected error in round %d: %s",
                         self.sm.step.round, exc, exc_info=True)
            self.fatal, self._stopping = exc, True
            self._wake_everyone()
            raise

    def _advance_steps(self) -> None:
        before = self._state_token()
        closed = self.sm.close_if_due()
        self._announce(before)  # e.g. the selection timeout picked clients
        while closed is not None:
            self.metrics.phase(kind=closed.step.kind.value,
                               seconds=closed.closed_at - closed.step.opened_at)
            self._phase_closers[closed.step.kind](closed)
            upcoming = self.sm.upcoming(closed)
            if upcoming is not None and upcoming[0] != closed.step.round:
                self._open_round(upcoming[0])
            self.sm.start_next(closed, version=self.model.version,
                               mask_id=self.instructions.mask_id)
            if upcoming is not None and upcoming[0] != closed.step.round:
                self._check_admitted(upcoming[0])
            self._wake_everyone()
            if self.sm.finished:
                self._write_report_logged(finished=True)
                log.info("run %s finished after round %d", self.run_id, closed.step.round)
            closed = self.sm.close_if_due()

    def _check_admitted(self, round_: int) -> None:
        """End the run cleanly (clients get SHUTDOWN) before a round the program refuses."""
        reason = self.program.admits(round_) if self.plan.trains(round_) else None
        if reason is not None and not self.sm.finished:
            self.sm.finished = True
            self.store.set_state("finish_reason", reason)
            log.warning("run %s ends before round %d: %s", self.run_id, round_, reason)

    def _close_train_phase(self, closed: ClosedStep) -> None:
        """The TRAIN phase ends its round here (atomically, see the module doc)."""
        step, open_round = closed.step, self._train
        assert open_round is not None
        start = time.perf_counter()
        up, down = self._take_bytes(step.round)
        candidate, saved = None, None
        try:
            if closed.succeeded:
                candidate = self.runner.close(open_round)
                if candidate is not None:
                    saved = save_model_state(self.state_dir, step.round, candidate.model,
                                             self.runner.components(), self.run_id)
            record = self._round_record(closed, open_round, candidate, closed.succeeded,
                                        closed.reason, start, up, down)
            rotated = self.store.record_round(
                record, checkpoint=saved, keep_checkpoints=KEEP_CHECKPOINTS,
                before_commit=lambda: write_report(self.state_dir, self.store, finished=False))
        except (RoundFailed, *WRITE_FAULTS) as exc:
            if isinstance(exc, WRITE_FAULTS):
                self.metrics.write_error("round_close")
            if candidate is not None:
                self.runner.rollback(candidate)
            if saved is not None:  # written but never recorded: nothing refers to it
                remove_checkpoints(self.state_dir, [saved.name])
            self._fail_round(closed, open_round, f"{type(exc).__name__}: {exc}", start, up, down)
            return
        if candidate is not None:
            self.runner.commit(candidate)
        self.metrics.round_closed(completed=record.status == "completed",
                                  version=self.model.version)
        remove_checkpoints(self.state_dir, rotated)
        log.info("round %d %s (%s): %d/%d updates, version %d, %s; close %.3fs under the lock",
                 step.round, record.status, record.reason, record.accepted, record.selected,
                 self.model.version, ", ".join(f"{k}={v:.4f}" for k, v in record.metrics.items())
                 or "no evaluation", time.perf_counter() - start)

    def _close_protocol_phase(self, closed: ClosedStep) -> None:
        """A protocol phase closed; the last one (or a failed one) ends the round."""
        assert self._protocol is not None
        closed = self._protocol.phase_closed(closed)
        if closed.ends_round:
            self._close_train_phase(closed)

    def _fail_round(self, closed: ClosedStep, open_round: OpenRound, reason: str,
                    start: float, up: int, down: int) -> None:
        """A close that could not be applied: the model is unchanged; record the failure
        if the store takes it (a disk that is still full is only logged). One ERROR line
        per failed round, however many writes failed."""
        self.metrics.round_closed(completed=False, version=self.model.version)
        record = self._round_record(closed, open_round, None, False, reason, start, up, down)
        try:
            self.store.record_round(record)
        except StoreError as exc:
            self.metrics.write_error("round_record")
            log.error("round %d failed at close, model unchanged at version %d: %s; the "
                      "failure is not recorded either (%s)", closed.step.round,
                      self.model.version, reason, exc)
            return
        log.error("round %d failed at close, model unchanged at version %d: %s",
                  closed.step.round, self.model.version, reason)
        self._write_report_logged(finished=False)

    def _round_record(self, closed: ClosedStep, open_round: OpenRound, candidate: Any,
                      succeeded: bool, reason: str, start: float, up: int, down: int
                      ) -> RoundRecord:
        model = candidate.model if candidate is not None else self.model
        return self._timer.round_record(
            closed, succeeded=succeeded, reason=reason, version=model.version,
            mask_id=model.mask_id, accepted=open_round.client_metrics,
            opened_at=self._round_opened,
            server_seconds=open_round.server_seconds + time.perf_counter() - start,
            close_seconds=time.perf_counter() - start, bytes_up=up, bytes_down=down,
            metrics=candidate.metrics if candidate is not None else {},
            measurements={**(candidate.measurements if candidate is not None else {}),
                          "client_failures": self.failures.of(closed.step.round)})

    def _write_report_logged(self, *, finished: bool) -> None:
        """The report is derived from the store; a failed rewrite is caught up next time."""
        try:
            write_report(self.state_dir, self.store, finished=finished)
        except WRITE_FAULTS as exc:  # the round's outcome is already logged and stored
            log.warning("could not rewrite the report (caught up at the next rewrite): %s", exc)
            self.metrics.write_error("report")

    def _close_evaluation_phase(self, closed: ClosedStep) -> None:
        """Federated evaluation metrics go to the round that produced the evaluated model."""
        ev = self._evaluation
        metrics = {f"federated_{k}": v for k, v in self.runner.close_evaluation(ev).items()}
        up, down = self._take_bytes(closed.step.round, keep_older=True)
        metrics.update(federated_eval_clients=float(len(closed.step.results)),
                       eval_bytes_up=float(up), eval_bytes_down=float(down))
        clients = {c: {f"federated_{k}": v for k, v in m.items()}
                   for c, m in ev.client_metrics.items()}
        try:
            evaluated_round = self.store.last_completed_round()
            self.store.update_round_metrics(evaluated_round, metrics, clients)
        except StoreError as exc:
            log.error("federated evaluation metrics lost: %s", exc)
            self.metrics.write_error("evaluation")
            return
        self._write_report_logged(finished=False)
        log.info("round %d federated evaluation (%s): %s", evaluated_round, closed.reason, metrics)

    def _take_bytes(self, round_: int, *, keep_older: bool = False) -> tuple[int, int]:
        """Bytes of ``round_``; tallies of earlier rounds are dropped unless ``keep_older``."""
        with self._bytes_lock:
            up, down = self._bytes.pop(round_, [0, 0])
            if not keep_older:
                self._bytes = {r: c for r, c in self._bytes.items() if r > round_}
        return up, down


def config_state_dir(config: ServerConfig) -> Path:
    path = Path(config.state_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
