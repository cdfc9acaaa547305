"""The coordinator: a lock, long-polls, deadlines and dispatch around the round runner.

The gRPC servicer calls four entry points: :meth:`check_in` (long-poll for a task),
:meth:`model_payload` (the encoded global model for a task), the push trio
:meth:`begin_push` / :meth:`decode_update` / :meth:`commit_push`, and
:meth:`report_evaluation`. The algorithms live elsewhere: the round state machine decides
who does what and when a phase closes (:mod:`fedserver.round_state`), the round program
and its pure runner decide what an update does to the model (:mod:`fedserver.round_runner`,
built by :mod:`fedserver.presets`). Decoding a pushed update runs outside the lock; an
update is fully validated before it is folded, so a rejected update never touches the
global model or the stored state.

Round close order (atomic): the runner computes the candidate model, the checkpoint and the
round record are written, and only then is the candidate published; a failure on the way
fails the round and restores every component.

Nothing here polls: long-polls and the deadline thread wait on one condition variable that
is notified whenever the state machine moves, and the deadline thread sleeps exactly until
the state machine's next deadline.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedcore import config as config_io
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.secrets import redacted
from fedserver.aggregators.weighting import reference_examples
from fedserver.config import ServerConfig
from fedserver.downlink import encode_model_payload
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState, restore_model_state, save_model_state
from fedserver.presets import build_program
from fedserver.round_plan import PhaseKind, RoundPlan
from fedserver.round_report import RoundTimer, write_report
from fedserver.round_runner import EvaluationRound, OpenRound, RoundFailed, RoundRunner
from fedserver.round_state import (
    Assignment,
    ClosedStep,
    Rejection,
    RejectReason,
    RoundStateMachine,
    Shutdown,
    Wait,
)
from fedserver.store import RunStore
from fedserver.transforms.evaluation_step import Evaluator
from fedserver.updates import DecodedUpdate, InvalidUpdate, PushTicket

log = logging.getLogger("fedserver.coordinator")
MAX_EXAMPLES = 1 << 40


class Coordinator:
    def __init__(self, config: ServerConfig, *, clock: Callable[[], float] = time.monotonic,
                 evaluator: Evaluator | None = None) -> None:
        self.config = config
        self.clock = clock
        self._cond = threading.Condition()
        self._stopping = False
        self.state_dir = config_state_dir(config)
        self.store = RunStore(self.state_dir / "fedprune.sqlite")
        self.run_id = self.store.ensure_run(uuid.uuid4().hex[:12],
                                           config_io.to_dict(redacted(config)))
        initial = get_parameters(build_model(config.training.model, seed=config.training.seed))
        self.program = build_program(config, initial=initial, evaluator=evaluator)
        self.runner = RoundRunner(self.program, model=ModelState(params=initial, version=0))
        self.runner.model = restore_model_state(self.state_dir, self.store, initial,
                                                self.runner.components())
        self.plan = RoundPlan(config.round)
        first_round = int(self.store.get_state("last_round", 0)) + 1
        self._seen_clients: dict[str, int] = {}
        self._open_round(first_round)
        self.sm = RoundStateMachine(config.round, run_id=self.run_id, first_round=first_round,
                                    version=self.model.version,
                                    mask_id=self.instructions.mask_id, clock=clock,
                                    plan=self.plan)
        self._timer = RoundTimer(clock)
        self._payload_cache: dict[tuple[int, str, bool], bytes] = {}
        self._bytes: dict[int, list[int]] = {}
        self._bytes_lock = threading.Lock()
        self._deadline_thread = threading.Thread(target=self._deadline_loop, daemon=True,
                                                 name="fedserver-deadlines")
        self._phase_closers = {PhaseKind.TRAIN: self._close_train_phase,
                               PhaseKind.EVALUATE: self._close_evaluation_phase}
        log.info("run %s (%s) starting at round %d (model version %d, mask %r)", self.run_id,
                 self.program.name, first_round, self.model.version, self.instructions.mask_id)

    @property
    def model(self) -> ModelState:
        return self.runner.model

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._deadline_thread.start()

    def stop(self) -> None:
        """Abandon the open step (nothing of it was persisted) and wake every waiter.

        Long-polls then answer WAIT; the store stays open for RPCs still in flight until
        :meth:`close`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._deadline_thread.is_alive():
            self._deadline_thread.join(timeout=5)

    def close(self) -> None:
        """Release the store; call after the gRPC server has drained."""
        self.store.close()

    @property
    def finished(self) -> bool:
        return self.sm.finished

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_finished(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.sm.finished or self._stopping, timeout)

    # -- check-in ---------------------------------------------------------------------------
    def check_in(self, client_id: str, *, num_examples: int, max_wait_s: float,
                 is_active: Callable[[], bool] = lambda: True,
                 ) -> tuple[Assignment | Wait | Shutdown, RoundInstructions]:
        """Long-poll: a task as soon as there is one, or Wait after ``max_wait_s``; with the
        instructions of the decision's round (read under the same lock, so they match)."""
        if not 0 <= num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 0..{MAX_EXAMPLES}")
        self._touch_client(client_id, num_examples)
        until = self.clock() + min(max_wait_s, self.config.network.long_poll_s)
        with self._cond:
            self.sm.client_waiting(client_id)
            try:
                while True:
                    before = self._state_token()
                    decision = self.sm.poll(client_id)
                    if self._state_token() != before:
                        self._cond.notify_all()
                    remaining = until - self.clock()
                    if not isinstance(decision, Wait) or remaining <= 0 or not is_active():
                        return decision, self.instructions
                    if self._stopping:
                        return Wait(retry_after_s=1.0), self.instructions
                    self._cond.wait(remaining)
            finally:
                self.sm.client_left(client_id)

    def _state_token(self) -> tuple[int, float | None, bool]:
        return id(self.sm.step), self.sm.step.selected_at, self.sm.finished

    def _touch_client(self, client_id: str, num_examples: int) -> None:
        """Record a client in the store on first sight or when its data size changes."""
        if self._seen_clients.get(client_id) != num_examples:
            self._seen_clients[client_id] = num_examples
            self.store.touch_client(client_id, num_examples)

    # -- downlink ---------------------------------------------------------------------------
    def model_payload(self, client_id: str, task_id: str, held_mask_id: str) -> tuple[bytes, int]:
        """Serialized ModelPayload for an assigned task, and the task's round."""
        with self._cond:
            step = self.sm.step
            if (self.sm.finished or client_id not in step.selected
                    or task_id != step.task_id(self.run_id, client_id)):
                raise LookupError(f"task {task_id!r} is not open for client {client_id!r}")
            instr = self.instructions
            include_mask = bool(instr.mask_id) and held_mask_id != instr.mask_id
            key = (self.model.version, instr.mask_id, include_mask)
            if key not in self._payload_cache:
                self._payload_cache = {k: v for k, v in self._payload_cache.items()
                                       if k[:2] == key[:2]}
                self._payload_cache[key] = encode_model_payload(
                    self.model, instr, wire=self.config.wire, include_mask=include_mask)
            return self._payload_cache[key], step.round

    # -- uplink -----------------------------------------------------------------------------
    def begin_push(self, client_id: str, header: cpb.UpdateHeader) -> PushTicket | None:
        """Validate a push header; None means an identical update was already accepted."""
        if not 0 < header.num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 1..{MAX_EXAMPLES}")
        with self._cond:
            new = self.sm.check_result(
                client_id, header.task_id, kind=PhaseKind.TRAIN, round=header.round,
                version=header.model_version, mask_id=header.mask_id,
                digest=header.stream.sha256)
            if not new:
                return None
            instr = self.instructions
            return PushTicket(client_id, header.task_id, header.round, header.model_version,
                              instr.mask_id, instr.masks, int(header.num_examples),
                              bytes(header.stream.sha256), "scores" in instr.side_keys,
                              self.clock())

    def decode_update(self, ticket: PushTicket, payload: bytes) -> DecodedUpdate:
        """Parse and decode outside the lock (see :func:`fedserver.updates.decode_update`)."""
        with self._cond:
            open_round = self._train
        if open_round is None or open_round.round != ticket.round:
            raise InvalidUpdate(f"round {ticket.round} is not collecting updates")
        return self.runner.decode(open_round, ticket, payload)

    def commit_push(self, ticket: PushTicket, update: DecodedUpdate,
                    metrics: dict[str, float]) -> bool:
        """Fold a decoded update into the round; False if it turned out to be a duplicate."""
        with self._cond:
            new = self.sm.check_result(ticket.client_id, ticket.task_id, kind=PhaseKind.TRAIN,
                                       round=ticket.round, version=ticket.version,
                                       mask_id=ticket.mask_id, digest=ticket.digest)
            if not new:
                return False
            assert self._train is not None and self._train.round == ticket.round
            self._fix_weight_cap(self._train)
            self.runner.add(self._train, ticket.client_id, update,
                            claimed_examples=ticket.num_examples,
                            metrics={**metrics, "push_seconds": self.clock() - ticket.started})
            self.sm.record_result(ticket.client_id, ticket.digest)
            self._advance_locked()
            return True

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
        """Answer to a protocol-step task (``Step`` RPC).

        The task is validated like any result (unknown, another client's, late), then its
        kind against the open phase: the phases this coordinator runs (TRAIN, EVALUATE)
        take their results through PushUpdate / ReportEvaluation, so until a round program
        with step phases (secure aggregation) is configured every step is refused with
        WRONG_KIND, and nothing changes."""
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        with self._cond:
            phase = self.sm.step.kind
            self.sm.check_result(client_id, request.task_id, kind=phase, round=request.round,
                                 version=None, mask_id=None, digest=digest)
            raise Rejection(RejectReason.WRONG_KIND,
                            f"the open phase is {phase.value}, which takes no protocol steps")

    def add_bytes(self, round_: int, *, up: int = 0, down: int = 0) -> None:
        """Credit wire bytes to a round; callers pass only rounds of validated tasks."""
        with self._bytes_lock:
            counts = self._bytes.setdefault(round_, [0, 0])
            counts[0] += up
            counts[1] += down

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
            self.runner.fix_weight_cap(open_round, reference_examples(self._seen_clients.values()))

    def _deadline_loop(self) -> None:
        with self._cond:
            while not self._stopping and not self.sm.finished:
                at = self.sm.next_deadline()
                self._cond.wait(None if at is None else max(0.0, at - self.clock()))
                if not self._stopping:
                    self._advance_locked()

    def _advance_locked(self) -> None:
        before = self._state_token()
        closed = self.sm.close_if_due()
        if self._state_token() != before:  # e.g. the selection timeout picked clients
            self._cond.notify_all()
        while closed is not None:
            self._phase_closers[closed.step.kind](closed)
            upcoming = self.sm.upcoming(closed)
            if upcoming is not None and upcoming[0] != closed.step.round:
                self._open_round(upcoming[0])
            self.sm.start_next(closed, version=self.model.version,
                               mask_id=self.instructions.mask_id)
            self._cond.notify_all()
            if self.sm.finished:
                write_report(self.state_dir, self.store, finished=True)
                log.info("run %s finished after round %d", self.run_id, closed.step.round)
            closed = self.sm.close_if_due()

    def _close_train_phase(self, closed: ClosedStep) -> None:
        """The TRAIN phase ends its round here: aggregate, checkpoint, record, publish."""
        step, open_round = closed.step, self._train
        assert open_round is not None
        start = time.perf_counter()
        status, reason, candidate, checkpoint = closed.succeeded, closed.reason, None, None
        if closed.succeeded:
            try:
                candidate = self.runner.close(open_round)
                if candidate is not None:
                    checkpoint = save_model_state(self.state_dir, step.round, candidate.model,
                                                  self.runner.components(), self.run_id)
            except (RoundFailed, OSError) as exc:
                if candidate is not None:
                    self.runner.rollback(candidate)
                status, reason, candidate = False, f"{type(exc).__name__}: {exc}", None
                log.error("round %d failed at close: %s", step.round, reason)
        version = candidate.model.version if candidate else self.model.version
        up, down = self._take_bytes(step.round)
        record = self._timer.round_record(
            closed, succeeded=status, reason=reason, version=version,
            mask_id=candidate.model.mask_id if candidate else self.model.mask_id,
            accepted=open_round.client_metrics, opened_at=self._round_opened,
            server_seconds=open_round.server_seconds + time.perf_counter() - start,
            close_seconds=time.perf_counter() - start,
            bytes_up=up, bytes_down=down, metrics=candidate.metrics if candidate else {},
            measurements=candidate.measurements if candidate else {})
        self.store.record_round(record, checkpoint=checkpoint)
        if candidate is not None:
            self.runner.commit(candidate)
        write_report(self.state_dir, self.store, finished=False)
        log.info("round %d %s (%s): %d/%d updates, version %d, %s; close %.3fs under the lock",
                 step.round, record.status, record.reason, record.accepted, record.selected,
                 self.model.version, ", ".join(f"{k}={v:.4f}" for k, v in record.metrics.items())
                 or "no evaluation", time.perf_counter() - start)

    def _close_evaluation_phase(self, closed: ClosedStep) -> None:
        """Federated evaluation metrics go to the round that produced the evaluated model."""
        ev = self._evaluation
        metrics = {f"federated_{k}": v for k, v in self.runner.close_evaluation(ev).items()}
        up, down = self._take_bytes(closed.step.round, keep_older=True)
        metrics.update(federated_eval_clients=float(len(closed.step.results)),
                       eval_bytes_up=float(up), eval_bytes_down=float(down))
        clients = {c: {f"federated_{k}": v for k, v in m.items()}
                   for c, m in ev.client_metrics.items()}
        evaluated_round = self.store.last_completed_round()
        self.store.update_round_metrics(evaluated_round, metrics, clients)
        write_report(self.state_dir, self.store, finished=False)
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
