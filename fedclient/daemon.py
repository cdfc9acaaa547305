"""The client daemon's loop: check in, pull, work, push — and ride out failures.

Every call is initiated here (pull-based protocol). Transient failures (UNAVAILABLE, a
coordinator restart, a dropped connection) are retried with exponential backoff and
jitter, each logged with the coordinator's address and the error; a rejected update
(late, stale, unknown task after a coordinator restart) is dropped and the daemon checks
in again. A push the coordinator refused as late (``DEADLINE_EXCEEDED`` carrying the
``late`` rejection, :mod:`fedcore.rejections`) is final for its task: it is never sent
again. Refusals back off too, on their own schedule that only a completed task resets, so
a coordinator that keeps refusing this client is not hammered in a loop. Refused
credentials end the daemon with :data:`EXIT_REFUSED` and one log line, no traceback
(retrying cannot help, and a supervisor restarting it should see why). Local data that
does not fit the task's model (feature count, label range) ends it with :data:`EXIT_DATA`
and one line naming the data and the model, before any training.
A task this client cannot complete — its local update is not finite (training diverged:
it is never pushed), the task names a model its operator did not allow, or the pulled
model is unusable — is reported to the coordinator with ``ReportFailure`` and the reason,
once and best effort, before the daemon checks in again.
``stop()`` (SIGTERM) cancels the call in flight and the loop exits between steps. A task
kind this client does not know (a newer coordinator) is treated as WAIT, so old clients
keep polling instead of failing.

One loop serves a stand-alone daemon and each virtual client of a pool
(:mod:`fedclient.pool`): a pool passes a ``channel`` it shares among its virtual clients
(a channel carries no identity; every call sends its own client's id and token), and a
``log_prefix`` naming the client. A daemon never closes a channel it was given.
``config.slowdown`` (experiments only) makes a client ``slowdown`` times slower: after each
local training it waits ``slowdown - 1`` times that training's wall time (a wait, so one
client's slowness costs the others no CPU), except after its first training, which is
mostly one-time warm-up (torch start-up took up to a minute on a loaded machine and would
be stretched tenfold); the wait ends early on ``stop()``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np

from fedclient.backoff import ExponentialBackoff
from fedclient.channel import open_channel
from fedclient.config import ClientConfig
from fedclient.fault import die_if_due
from fedclient.local_work import LocalWorker, ModelNotAllowed, NonFiniteUpdate, TrainOutcome
from fedclient.model_source import obtain_model
from fedclient.payloads import HeldState, PayloadError, encode_update
from fedclient.secure_steps import SecureAggregationSteps
from fedcore.data_fit import DataModelMismatch
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import coordinator_pb2_grpc
from fedcore.rejections import LATE, rejection_of
from fedcore.streaming import PayloadAssembler, make_header, split_payload
from fedcore.text import clip

log = logging.getLogger("fedclient")
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}
FATAL = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.UNIMPLEMENTED}
VERSION = "0.1.0"
EXIT_REFUSED = 3  # the coordinator refuses this client (credentials, unknown id)
EXIT_DATA = 2  # the local data does not fit the task's model (as for a config error)


class FatalClientError(RuntimeError):
    """The coordinator refuses this client (bad credentials); retrying cannot help."""


class _Prefixed(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every message (a pool's virtual clients share one log)."""

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        return f"{self.extra['prefix']}{msg}", kwargs  # type: ignore[index]


class ClientDaemon:
    def __init__(self, config: ClientConfig, worker: LocalWorker, *,
                 channel: grpc.Channel | None = None, log_prefix: str = "") -> None:
        """``channel``: a shared channel (kept open by its owner); None opens one."""
        self.config = config
        self.worker = worker
        self._stop = threading.Event()
        self._inflight: grpc.Future | None = None
        self._owns_channel = channel is None
        self._channel = open_channel(config.server, tls=config.tls) if channel is None \
            else channel
        self.log = _Prefixed(log, {"prefix": log_prefix})
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._metadata = (("x-fedprune-client-id", config.client_id),
                          ("authorization", f"Bearer {config.token}"))
        self._backoff = ExponentialBackoff(initial_s=config.backoff_initial_s,
                                           max_s=config.backoff_max_s,
                                           rng=random.Random(f"{config.client_id}/{config.seed}"))
        # Refusals (not transport failures) back off separately: a check-in succeeding
        # between two refusals must not reset their delay (see the module doc).
        self._refusals = ExponentialBackoff(initial_s=config.backoff_initial_s,
                                            max_s=config.backoff_max_s,
                                            rng=random.Random(f"{config.client_id}/refusals"))
        self.held = HeldState()
        self.rounds_done = 0
        self._trained = False  # for the slowdown (see the module doc)
        self._handlers: dict[int, Callable[[cpb.Task], None]] = {
            cpb.TASK_KIND_TRAIN: self._train,
            cpb.TASK_KIND_EVALUATE: self._evaluate,
            cpb.TASK_KIND_WAIT: self._wait,
            **SecureAggregationSteps(client_id=config.client_id, send=self._send_step,
                                     train=self._train_for_step,
                                     refused=self._refused_pause).handlers(),
        }
        self._unknown_kinds: set[int] = set()

    def stop(self) -> None:
        self._stop.set()
        inflight = self._inflight
        if inflight is not None:
            inflight.cancel()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> int:
        """Serve tasks until SHUTDOWN or stop(); returns a process exit code."""
        self.log.info("client %s serving %s with %d training examples", self.config.client_id,
                 self.config.server, len(self.worker.data.train))  # type: ignore[arg-type]
        try:
            while not self._stop.is_set():
                try:
                    task = self._check_in()
                    self._backoff.reset()
                    if task.kind == cpb.TASK_KIND_SHUTDOWN:
                        self.log.info("coordinator says the run is over after %d tasks",
                                 self.rounds_done)
                        return 0
                    self._dispatch(task)
                except grpc.RpcError as exc:
                    self._on_rpc_error(exc)
        except FatalClientError as exc:
            self.log.error("%s", exc)
            return EXIT_REFUSED
        except DataModelMismatch as exc:
            self.log.error("this client's data does not fit the coordinator's model: %s", exc)
            return EXIT_DATA
        self.log.info("client %s stopped", self.config.client_id)
        return 0

    def _on_rpc_error(self, exc: grpc.RpcError) -> None:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        if self._stop.is_set():
            return
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code in FATAL:
            raise FatalClientError(f"coordinator {self.config.server} refused client "
                                   f"{self.config.client_id!r}: {code.name}: {details}")
        if code in RETRYABLE and not _is_refusal(exc):
            delay = self._backoff.next_delay()
            self.log.info("coordinator %s unreachable: %s: %s; retrying in %.2fs",
                     self.config.server, code.name, details, delay)
            self._stop.wait(delay)
        else:  # refused (late, stale, unknown after a restart, invalid): check in again
            self.log.warning("coordinator %s refused: %s: %s", self.config.server, code.name,
                        details)
            self._refused_pause()

    def _refused_pause(self) -> None:
        """Wait before the check-in that follows a refusal; grows until a task completes."""
        delay = max(self.config.backoff_initial_s, self._refusals.next_delay())
        self.log.info("checking in again in %.2fs", delay)
        self._stop.wait(delay)

    def _call(self, method: grpc.UnaryUnaryMultiCallable | grpc.StreamUnaryMultiCallable,
              request: object, timeout: float) -> object:
        """A unary-response call that stop() can cancel."""
        future = method.future(request, timeout=timeout, metadata=self._metadata)
        self._inflight = future
        try:
            return future.result()
        except grpc.FutureCancelledError:
            raise _Cancelled() from None
        finally:
            self._inflight = None

    def _check_in(self) -> cpb.Task:
        req = cpb.RoundRequest(max_wait_ms=self.config.max_wait_ms,
                               num_examples=len(self.worker.data.train),  # type: ignore[arg-type]
                               client_version=VERSION, **self.held.declared())  # type: ignore[arg-type]
        return self._call(self._stub.Round, req, self.config.max_wait_ms / 1000 + 30)  # type: ignore[return-value]

    def _dispatch(self, task: cpb.Task) -> None:
        """Run the task's handler; SHUTDOWN never gets here (``run`` ends on it)."""
        die_if_due(self.config.fault, task)
        self._handlers.get(task.kind, self._unknown)(task)

    def _wait(self, task: cpb.Task) -> None:
        """WAIT: the long poll already waited, so sleep only if the coordinator asks to."""
        if task.retry_after_ms:
            self._stop.wait(task.retry_after_ms / 1000)

    def _unknown(self, task: cpb.Task) -> None:
        """An unknown kind is a WAIT of ``retry_after_ms`` or 1 s, logged once per kind
        (a newer coordinator would otherwise flood the log on every check-in)."""
        if task.kind not in self._unknown_kinds:
            self._unknown_kinds.add(task.kind)
            self.log.warning("treating task kind %d, which this client does not know, as WAIT",
                        task.kind)
        self._stop.wait(task.retry_after_ms / 1000 if task.retry_after_ms else 1.0)

    # -- tasks --------------------------------------------------------------------------
    def _time_left(self, task: cpb.Task) -> float:
        return max(1.0, task.deadline_unix_ms / 1000 - time.time())

    def _pull(self, task: cpb.Task) -> dict[str, np.ndarray]:
        """The task's verified global model (:func:`fedclient.model_source.obtain_model`:
        inline, held, seeded, or pulled); adopts the mask and model it brings. A model this
        client does not allow is refused before anything is pulled."""
        try:
            shapes = self.worker.shapes(task.model_name)
        except DataModelMismatch:
            raise  # this client's data can never train this model: run() ends the daemon
        except ModelNotAllowed as exc:
            raise _TaskFailed(str(exc), reason=cpb.FAILURE_REASON_MODEL_NOT_ALLOWED) from None
        except ValueError as exc:
            raise _TaskFailed(str(exc), reason=cpb.FAILURE_REASON_BAD_MODEL) from None
        try:
            params, self.held = obtain_model(task, self.held, shapes=shapes,
                                             pull=lambda held: self._pull_payload(task, held))
        except (PayloadError, ValueError) as exc:
            raise _TaskFailed(str(exc), reason=cpb.FAILURE_REASON_BAD_MODEL) from None
        return params

    def _pull_payload(self, task: cpb.Task, held: HeldState) -> bytes | memoryview:
        stream = self._stub.PullModel(
            cpb.PullModelRequest(task_id=task.task_id, **held.declared()),  # type: ignore[arg-type]
            timeout=self._time_left(task), metadata=self._metadata)
        self._inflight = stream  # type: ignore[assignment]
        try:
            return _assemble(stream, self.config.max_payload_bytes)
        finally:
            self._inflight = None

    def _train(self, task: cpb.Task) -> None:
        try:
            start = time.perf_counter()
            params = self._pull(task)
            pull_seconds = time.perf_counter() - start
            masks = self.held.masks if task.mask_id else None
            self.log.info("round %d: training on model version %d%s", task.round, task.model_version,
                     f" under mask {task.mask_id}" if masks else "")
            try:
                outcome = self.worker.train(task, params, masks)
            except NonFiniteUpdate as exc:
                raise _TaskFailed(str(exc), reason=cpb.FAILURE_REASON_NON_FINITE_UPDATE) \
                    from None
            self._slow_down(outcome)
            ack = self._push(task, outcome, masks, pull_seconds)
        except _TaskFailed as exc:
            self._give_up(task, exc)
            return
        self.rounds_done += 1
        self._refusals.reset()
        self.log.info("round %d: pushed update (%d examples, loss %.4f)%s", task.round,
                 outcome.num_examples, outcome.metrics["train_loss"],
                 " [duplicate]" if ack.duplicate else "")

    def _train_for_step(self, task: cpb.Task) -> tuple[TrainOutcome, dict[str, tuple[int, ...]],
                                                       dict[str, np.ndarray] | None]:
        """Pull and train for a MASKED_TRAIN step (secure aggregation encodes the result)."""
        params = self._pull(task)
        masks = self.held.masks if task.mask_id else None
        self.log.info("round %d: training on model version %d for secure aggregation",
                 task.round, task.model_version)
        return self.worker.train(task, params, masks), self.worker.shapes(task.model_name), masks

    def _send_step(self, task: cpb.Task, payload: bytes) -> None:
        """Answer a protocol step; retried like a push (the coordinator counts it once)."""
        request = cpb.StepRequest(task_id=task.task_id, round=task.round, kind=task.kind,
                                  payload=payload)
        while True:
            try:
                ack = self._call(self._stub.Step, request, self._time_left(task))
                break
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or _is_refusal(exc) or self._stop.is_set() \
                        or time.time() * 1000 > task.deadline_unix_ms:
                    raise
                self._stop.wait(self._backoff.next_delay())
        self._refusals.reset()
        self.log.info("round %d: step %d answered%s", task.round, task.kind,
                 " [duplicate]" if ack.duplicate else "")  # type: ignore[attr-defined]

    def _slow_down(self, outcome: TrainOutcome) -> None:
        """Simulated slow hardware: wait (slowdown - 1) x the training time (see the module
        doc); not after the first training, whose time is mostly one-time warm-up."""
        first, self._trained = not self._trained, True
        if self.config.slowdown > 1 and not first:
            extra = (self.config.slowdown - 1) * outcome.metrics["train_seconds"]
            self._stop.wait(extra)
            outcome.metrics["slowdown_seconds"] = extra

    def _push(self, task: cpb.Task, outcome: TrainOutcome, masks: dict[str, np.ndarray] | None,
              pull_seconds: float) -> cpb.PushAck:
        data = encode_update(task, outcome, masks, client_id=self.config.client_id,
                             seed=self.config.seed).SerializeToString()
        header = cpb.UpdateHeader(
            task_id=task.task_id, round=task.round, model_version=task.model_version,
            mask_id=task.mask_id, num_examples=outcome.num_examples, stream=make_header(data),
            metrics={**outcome.metrics, "pull_seconds": pull_seconds})

        def chunks() -> Iterator[cpb.UpdateChunk]:
            yield cpb.UpdateChunk(header=header)
            for part in split_payload(data):
                yield cpb.UpdateChunk(data=part)

        while True:  # the same bytes on every attempt: the coordinator counts them once
            try:
                return self._call(self._stub.PushUpdate, chunks(), self._time_left(task))  # type: ignore[return-value]
            except grpc.RpcError as exc:
                if _rejection(exc) == LATE:  # final: the step closed without this update
                    raise _TaskFailed(f"push refused as late: {exc.details()}") from None
                if exc.code() not in RETRYABLE or _is_refusal(exc) or self._stop.is_set() \
                        or time.time() * 1000 > task.deadline_unix_ms:
                    raise
                self._stop.wait(self._backoff.next_delay())

    def _evaluate(self, task: cpb.Task) -> None:
        try:
            params = self._pull(task)
        except _TaskFailed as exc:
            self._give_up(task, exc)
            return
        num_examples, metrics = self.worker.evaluate(task, params)
        report = cpb.EvaluationReport(task_id=task.task_id, round=task.round,
                                      num_examples=max(1, num_examples), metrics=metrics)
        self._call(self._stub.ReportEvaluation, report, self._time_left(task))
        self._refusals.reset()
        self.log.info("round %d: evaluated: %s", task.round, metrics)


    def _give_up(self, task: cpb.Task, failure: _TaskFailed) -> None:
        """Drop ``task``; tell the coordinator why when there is a reason to report."""
        self.log.warning("round %d: task abandoned: %s", task.round, failure)
        if failure.reason:
            report = cpb.TaskFailure(task_id=task.task_id, round=task.round,
                                     reason=failure.reason, detail=clip(str(failure), 250))
            try:
                self._call(self._stub.ReportFailure, report, min(10.0, self._time_left(task)))
                self.log.info("round %d: told the coordinator (%s)",
                         task.round, cpb.FailureReason.Name(failure.reason))
            except grpc.RpcError as exc:  # best effort: the task times out there anyway
                self.log.info("round %d: could not report the failure: %s", task.round,
                         exc.code().name if hasattr(exc, "code") else exc)
        self._refused_pause()


def _rejection(exc: grpc.RpcError) -> str | None:
    """The coordinator's refusal reason carried by ``exc``, or None (see the module doc)."""
    trailing = getattr(exc, "trailing_metadata", None)
    return rejection_of(trailing() if callable(trailing) else None)


def _is_refusal(exc: grpc.RpcError) -> bool:
    return _rejection(exc) is not None


class _TaskFailed(Exception):
    """This task cannot be completed; drop it and check in again. ``reason``: the
    ``FailureReason`` to report to the coordinator (0: nothing to report, e.g. late)."""

    def __init__(self, message: str, *, reason: int = 0) -> None:
        super().__init__(message)
        self.reason = reason


class _Cancelled(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return "cancelled by stop()"


def _assemble(stream: Iterator[cpb.ModelChunk], max_bytes: int) -> memoryview:
    first = next(stream, None)
    if first is None or first.WhichOneof("part") != "header":
        raise _TaskFailed("model stream did not start with a header",
                          reason=cpb.FAILURE_REASON_BAD_MODEL)
    assembler = PayloadAssembler(first.header, max_bytes=max_bytes)
    for chunk in stream:
        assembler.add(chunk.data)
    return assembler.finish()
