"""The coordinator: round state machine + strategy + pruning + store, behind one lock.

The gRPC servicer calls four entry points: :meth:`check_in` (long-poll for a task),
:meth:`model_payload` (the encoded global model for a task), the push trio
:meth:`begin_push` / :meth:`decode_update` / :meth:`commit_push`, and
:meth:`report_evaluation`. Decoding a pushed update is the expensive part and runs
outside the lock; the update is fully validated before it is folded into the aggregate, so
a rejected update never touches the global model or the stored state.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedcore import config as config_io
from fedcore.model_codec import Encoding, encode_mask_message, encode_model
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedserver.aggregation import WeightedMean
from fedserver.config import ServerConfig
from fedserver.model_state import ModelState, restore_model_state, save_model_state
from fedserver.pruning.combine import ScoreCombiner
from fedserver.pruning.factory import build_controller
from fedserver.round_report import RoundTimer, write_report
from fedserver.round_state import (
    Assignment,
    ClosedStep,
    RoundStateMachine,
    Shutdown,
    StepKind,
    Wait,
)
from fedserver.store import RunStore
from fedserver.strategy import build_strategy
from fedserver.updates import DecodedUpdate, InvalidUpdate, PushTicket, decode_update

log = logging.getLogger("fedserver.coordinator")
Params = dict[str, np.ndarray]
MAX_EXAMPLES = 1 << 40


@dataclass
class _StepAccumulator:
    """Per-step results: the aggregate of updates, or weighted evaluation metrics."""

    mean: WeightedMean | None = None
    scores: ScoreCombiner | None = None  # client-scores pruning
    eval_sums: dict[str, float] = field(default_factory=dict)
    eval_weight: float = 0.0
    client_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    server_seconds: float = 0.0


class Coordinator:
    def __init__(self, config: ServerConfig, *, clock: Callable[[], float] = time.monotonic,
                 evaluator: Callable[[Params], dict[str, float]] | None = None) -> None:
        self.config = config
        self.clock = clock
        self._cond = threading.Condition()
        self._stopping = False
        self._evaluator = evaluator
        self.state_dir = config_state_dir(config)
        self.store = RunStore(self.state_dir / "fedprune.sqlite")
        self.run_id = self.store.ensure_run(uuid.uuid4().hex[:12], config_io.to_dict(config))
        self.strategy = build_strategy(config.strategy)
        initial = get_parameters(build_model(config.training.model, seed=config.training.seed))
        self.shapes = {name: tuple(a.shape) for name, a in initial.items()}
        self.pruning = build_controller(config.pruning, initial)
        state = restore_model_state(self.state_dir, self.store, initial, self.strategy.optimizer,
                                    self.pruning)
        self.model: ModelState = state
        self.masks: dict[str, np.ndarray] | None = None
        self.mask_id = ""
        first_round = int(self.store.get_state("last_round", 0)) + 1
        self._set_training_mask(first_round)
        self.sm = RoundStateMachine(config.round, run_id=self.run_id, first_round=first_round,
                                    version=self.model.version, mask_id=self.mask_id, clock=clock)
        self._acc = self._new_accumulator(first_round)
        self._timer = RoundTimer(clock)
        self._payload_cache: dict[tuple[int, bool], bytes] = {}
        self._seen_clients: dict[str, int] = {}
        self._bytes: dict[int, list[int]] = {}
        self._bytes_lock = threading.Lock()
        self._deadline_thread = threading.Thread(target=self._deadline_loop, daemon=True,
                                                 name="fedserver-deadlines")
        log.info("run %s starting at round %d (model version %d, mask %r)", self.run_id,
                 first_round, self.model.version, self.mask_id)

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
                 is_active: Callable[[], bool] = lambda: True) -> Assignment | Wait | Shutdown:
        """Long-poll: return a task as soon as there is one, or Wait after ``max_wait_s``."""
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
                        return decision
                    if self._stopping:
                        return Wait(retry_after_s=1.0)
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
            include_mask = bool(self.mask_id) and held_mask_id != self.mask_id
            key = (self.model.version, include_mask)
            if key not in self._payload_cache:
                self._payload_cache = {k: v for k, v in self._payload_cache.items()
                                       if k[0] == self.model.version}
                self._payload_cache[key] = self._encode_payload(include_mask)
            return self._payload_cache[key], step.round

    def _encode_payload(self, include_mask: bool) -> bytes:
        wire = self.config.wire
        model = encode_model(self.model.params, encoding=Encoding(wire.downlink, wire.clusters,
                                                                  wire.zstd),
                             version=self.model.version, mask_id=self.mask_id, masks=self.masks)
        payload = cpb.ModelPayload(model=model)
        if include_mask and self.masks is not None:
            payload.mask.CopyFrom(encode_mask_message(self.mask_id, self.masks))
        return payload.SerializeToString()

    # -- uplink -----------------------------------------------------------------------------
    def begin_push(self, client_id: str, header: cpb.UpdateHeader) -> PushTicket | None:
        """Validate a push header; None means an identical update was already accepted."""
        if not 0 < header.num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 1..{MAX_EXAMPLES}")
        with self._cond:
            new = self.sm.check_result(
                client_id, header.task_id, kind=StepKind.TRAIN, round=header.round,
                version=header.model_version, mask_id=header.mask_id,
                digest=header.stream.sha256)
            if not new:
                return None
            return PushTicket(client_id, header.task_id, header.round, header.model_version,
                              self.mask_id, self.masks, int(header.num_examples),
                              bytes(header.stream.sha256), self._acc.scores is not None,
                              self.clock())

    def decode_update(self, ticket: PushTicket, payload: bytes) -> DecodedUpdate:
        """Parse and decode outside the lock (see :func:`fedserver.updates.decode_update`)."""
        score_shapes = self.pruning.score_shapes() if self.pruning is not None else {}
        return decode_update(ticket, payload, shapes=self.shapes, score_shapes=score_shapes)

    def commit_push(self, ticket: PushTicket, update: DecodedUpdate,
                    metrics: dict[str, float]) -> bool:
        """Fold a decoded update into the round; False if it turned out to be a duplicate."""
        with self._cond:
            new = self.sm.check_result(ticket.client_id, ticket.task_id, kind=StepKind.TRAIN,
                                       round=ticket.round, version=ticket.version,
                                       mask_id=ticket.mask_id, digest=ticket.digest)
            if not new:
                return False
            start = time.perf_counter()
            assert self._acc.mean is not None
            self._acc.mean.add(update.delta, float(ticket.num_examples))
            if update.scores is not None and self._acc.scores is not None:
                self._acc.scores.add(update.scores, float(ticket.num_examples))
            self.sm.record_result(ticket.client_id, ticket.digest)
            self._acc.client_metrics[ticket.client_id] = {
                **metrics, "push_seconds": self.clock() - ticket.started,
                "num_examples": float(ticket.num_examples)}
            self._acc.server_seconds += update.decode_seconds + time.perf_counter() - start
            self._advance_locked()
            return True

    def report_evaluation(self, client_id: str, report: cpb.EvaluationReport) -> bool:
        metrics = dict(report.metrics)
        if not 0 < report.num_examples <= MAX_EXAMPLES:
            raise InvalidUpdate(f"num_examples must be in 1..{MAX_EXAMPLES}")
        if not all(np.isfinite(v) for v in metrics.values()):
            raise InvalidUpdate("evaluation metrics must be finite")
        digest = hashlib.sha256(report.SerializeToString(deterministic=True)).digest()
        with self._cond:
            new = self.sm.check_result(client_id, report.task_id, kind=StepKind.EVALUATE,
                                       round=report.round, version=None, mask_id=None,
                                       digest=digest)
            if not new:
                return False
            weight = float(report.num_examples)
            for key, value in metrics.items():
                self._acc.eval_sums[key] = self._acc.eval_sums.get(key, 0.0) + weight * value
            self._acc.eval_weight += weight
            self.sm.record_result(client_id, digest)
            self._advance_locked()
            return True

    def add_bytes(self, round_: int, *, up: int = 0, down: int = 0) -> None:
        with self._bytes_lock:
            counts = self._bytes.setdefault(round_, [0, 0])
            counts[0] += up
            counts[1] += down

    def current_round(self) -> int:
        return self.sm.step.round

    # -- closing steps ----------------------------------------------------------------------
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
            if closed.step.kind is StepKind.TRAIN:
                self._close_train(closed)
            else:
                self._close_evaluation(closed)
            upcoming = self.sm.upcoming(closed)
            if upcoming is not None and upcoming[0] is StepKind.TRAIN:
                self._set_training_mask(upcoming[1])
            self.sm.start_next(closed, version=self.model.version, mask_id=self.mask_id)
            self._acc = self._new_accumulator(self.sm.step.round)
            self._cond.notify_all()
            if self.sm.finished:
                write_report(self.state_dir, self.store, finished=True)
                log.info("run %s finished after round %d", self.run_id, closed.step.round)
            closed = self.sm.close_if_due()

    def _close_train(self, closed: ClosedStep) -> None:
        step, acc = closed.step, self._acc
        processing = time.perf_counter()
        metrics: dict[str, float] = {}
        checkpoint = None
        if closed.succeeded and acc.mean is not None and (mean := acc.mean.result()) is not None:
            params = self.strategy.optimizer.step(self.model.params, mean)
            params = self._apply_pruning(step.round, params, acc)
            self.model = ModelState(params=params, version=self.model.version + 1)
            if self._evaluator is not None:
                metrics.update(self._evaluator(params))
            checkpoint = save_model_state(self.state_dir, step.round, self.model,
                                          self.strategy.optimizer, self.pruning, self.run_id)
        acc.server_seconds += time.perf_counter() - processing
        up, down = self._take_bytes(step.round)
        record = self._timer.round_record(
            closed, version=self.model.version, mask_id=self.mask_id, accepted=acc.client_metrics,
            server_seconds=acc.server_seconds, bytes_up=up, bytes_down=down, metrics=metrics)
        self.store.record_round(record, checkpoint=checkpoint)
        write_report(self.state_dir, self.store, finished=False)
        log.info("round %d %s (%s): %d/%d updates, version %d, %s", step.round, record.status,
                 closed.reason, record.accepted, record.selected, self.model.version,
                 ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "no evaluation")

    def _apply_pruning(self, round_: int, params: Params, acc: _StepAccumulator) -> Params:
        if self.pruning is None:
            return params
        scores = acc.scores.result() if acc.scores is not None else None
        update = self.pruning.update_after_aggregation(round_, params, scores)
        if update is not None:
            mask_id, masks = update
            log.info("round %d: new mask %s", round_, mask_id)
        else:
            masks = self.masks
        if masks:
            params = {n: (np.where(masks[n], p, 0).astype(np.float32) if n in masks else p)
                      for n, p in params.items()}
            self.strategy.optimizer.apply_mask(masks)
        return params

    def _close_evaluation(self, closed: ClosedStep) -> None:
        acc = self._acc
        metrics = {f"federated_{k}": v / acc.eval_weight for k, v in acc.eval_sums.items()} \
            if acc.eval_weight else {}
        up, down = self._take_bytes(closed.step.round)
        metrics.update(federated_eval_clients=float(len(closed.step.results)),
                       eval_bytes_up=float(up), eval_bytes_down=float(down))
        self.store.update_round_metrics(closed.step.round, metrics)
        write_report(self.state_dir, self.store, finished=False)
        log.info("round %d federated evaluation: %s", closed.step.round, metrics)

    def _take_bytes(self, round_: int) -> tuple[int, int]:
        with self._bytes_lock:
            up, down = self._bytes.pop(round_, [0, 0])
        return up, down

    def _set_training_mask(self, round_: int) -> None:
        if self.pruning is None:
            return
        self.mask_id, self.masks = self.pruning.mask_for_training(round_)

    def _new_accumulator(self, round_: int) -> _StepAccumulator:
        acc = _StepAccumulator()
        if self.sm.step.kind is StepKind.TRAIN:
            acc.mean = WeightedMean(self.shapes)
            if self.pruning is not None and self.pruning.wants_client_scores(round_):
                acc.scores = self.pruning.new_combiner(round_)
        return acc


def config_state_dir(config: ServerConfig) -> Path:
    path = Path(config.state_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
