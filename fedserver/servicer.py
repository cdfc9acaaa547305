"""The thin gRPC servicer (grpc.aio): admit, parse, count bytes, translate, call the
coordinator.

Every call first passes the :class:`~fedserver.call_gate.CallGate` (peer throttling,
authentication, the new-id cap, the per-client call slots); only then are its request
bytes parsed (:mod:`fedserver.request_parsing`: the service is registered with identity
deserializers, so undecodable bytes are an INVALID_ARGUMENT here, not a grpcio leak).

Every handler runs inside :func:`fedserver.status.abort_on_error`, so domain errors become
precise status codes in one place. Bytes are counted from the serialized size of every
request and response message, attributed to the round of the task they belong to, and
only once that task was validated (a client cannot inflate the tally of a round it names).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
import numpy as np

from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import coordinator_pb2_grpc
from fedcore.streaming import PayloadAssembler, StreamError, make_header, split_payload
from fedserver.broadcast import Held
from fedserver.call_gate import CallGate
from fedserver.coordinator import Coordinator
from fedserver.request_parsing import RequestParser
from fedserver.round_state import Assignment
from fedserver.status import abort_on_error
from fedserver.tasks import TaskFactory
from fedserver.updates import InvalidUpdate

T = TypeVar("T")
R = TypeVar("R", cpb.EvaluationReport, cpb.StepRequest, cpb.TaskFailure)
A = TypeVar("A", cpb.PushAck, cpb.StepAck)

# tasks whose client needs the global model (key-exchange and unmask steps do not)
_NEEDS_MODEL = frozenset({cpb.TASK_KIND_TRAIN, cpb.TASK_KIND_EVALUATE,
                          cpb.TASK_KIND_MASKED_TRAIN})


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    """Handlers are coroutines on the server's event loop (:mod:`fedserver.server`): a
    waiting call costs no thread. Work that can take long — a coordinator call that takes
    its lock, decoding and folding an update, encoding the model — runs on ``executor``
    (a few threads), so the loop keeps serving while it happens."""

    def __init__(self, coordinator: Coordinator, gate: CallGate, tasks: TaskFactory, *,
                 max_payload_bytes: int, executor: Executor, max_downloads: int,
                 parser: RequestParser | None = None) -> None:
        """``max_downloads``: model downloads streaming at once; each holds about one chunk
        in flight, so a burst of C pulls costs ``max_downloads`` chunks, not C (the rest
        wait their turn as coroutines)."""
        self._coord = coordinator
        self._gate = gate
        self._tasks = tasks
        self._max_payload = max_payload_bytes
        self._executor = executor
        self._downloads = asyncio.Semaphore(max_downloads)
        self._parse = parser or RequestParser()
        self._rejections = coordinator.metrics.rejections

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def Round(self, raw: bytes, context: grpc.aio.ServicerContext) -> cpb.Task:
        async with abort_on_error(context, "Round", self._rejections):
            with self._gate.admit(context, registers=True) as client:
                request = self._parse(cpb.RoundRequest, raw)
                held = _held(request)  # validated before a task is assigned
                decision, instructions = await self._coord.check_in(
                    client, num_examples=request.num_examples,
                    max_wait_s=request.max_wait_ms / 1000)
                task = self._tasks.build(decision, instructions)
                if isinstance(decision, Assignment) and task.kind in _NEEDS_MODEL:
                    await self._off_loop(self._add_model_fields, client, task, held)
                rnd = (decision.round if isinstance(decision, Assignment)
                       else self._coord.current_round())
                self._coord.add_bytes(rnd, up=request.ByteSize(), down=task.ByteSize())
                return task
        raise AssertionError("unreachable")  # abort raises

    def _add_model_fields(self, client: str, task: cpb.Task, held: Held) -> None:
        """Digest, seeded initialisation and inline payload of an assigned task. A round that
        closed meanwhile leaves the task as it is (its PullModel then gets NOT_FOUND)."""
        try:
            task.MergeFrom(self._coord.task_model(client, task.task_id, held))
        except LookupError:
            pass

    async def PullModel(self, raw: bytes,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.ModelChunk]:
        async with abort_on_error(context, "PullModel", self._rejections):
            with self._gate.admit(context) as client:  # the slot is held to the last chunk
                request = self._parse(cpb.PullModelRequest, raw)
                payload, rnd = await self._off_loop(self._coord.model_payload, client,
                                                    request.task_id, _held(request))
                async with self._downloads:
                    header = cpb.ModelChunk(header=make_header(payload))
                    self._coord.add_bytes(rnd, up=request.ByteSize(), down=header.ByteSize())
                    yield header
                    for data in split_payload(payload):
                        chunk = cpb.ModelChunk(data=data)
                        self._coord.add_bytes(rnd, down=chunk.ByteSize())
                        yield chunk

    async def PushUpdate(self, raw_chunks: AsyncIterator[bytes],
                         context: grpc.aio.ServicerContext) -> cpb.PushAck:
        async with abort_on_error(context, "PushUpdate", self._rejections):
            with self._gate.admit(context) as client:
                chunks = aiter(raw_chunks)
                raw = await anext(chunks, None)
                first = None if raw is None else self._parse(cpb.UpdateChunk, raw)
                if first is None or first.WhichOneof("part") != "header":
                    raise StreamError("the first UpdateChunk must carry the header")
                header = first.header
                _check_metrics(header.metrics)
                ticket = await self._off_loop(self._coord.begin_push, client, header)
                self._coord.add_bytes(header.round, up=first.ByteSize())
                if ticket is None:
                    return cpb.PushAck(accepted=True, duplicate=True, round=header.round)
                assembler = PayloadAssembler(header.stream, max_bytes=self._max_payload)
                async for raw in chunks:
                    chunk = self._parse(cpb.UpdateChunk, raw)
                    if chunk.WhichOneof("part") != "data":
                        raise StreamError("only the first UpdateChunk may carry a header")
                    self._coord.add_bytes(header.round, up=chunk.ByteSize())
                    assembler.add(chunk.data)
                payload = assembler.finish()
                update = await self._off_loop(self._coord.decode_update, ticket, payload)
                new = await self._off_loop(self._coord.commit_push, ticket, update,
                                           dict(header.metrics))
                ack = cpb.PushAck(accepted=True, duplicate=not new, round=ticket.round)
                self._coord.add_bytes(header.round, down=ack.ByteSize())
                return ack
        raise AssertionError("unreachable")

    async def ReportEvaluation(self, raw: bytes,
                               context: grpc.aio.ServicerContext) -> cpb.PushAck:
        return await self._answer("ReportEvaluation", raw, context, cpb.EvaluationReport,
                                  self._coord.report_evaluation, cpb.PushAck)

    async def Step(self, raw: bytes, context: grpc.aio.ServicerContext) -> cpb.StepAck:
        return await self._answer("Step", raw, context, cpb.StepRequest,
                                  self._coord.protocol_step, cpb.StepAck)

    async def ReportFailure(self, raw: bytes, context: grpc.aio.ServicerContext) -> cpb.PushAck:
        return await self._answer("ReportFailure", raw, context, cpb.TaskFailure,
                                  self._coord.report_failure, cpb.PushAck)

    async def _answer(self, method: str, raw: bytes, context: grpc.aio.ServicerContext,
                      request_type: type[R], handle: Callable[[str, R], bool],
                      ack_type: type[A]) -> A:
        """A unary answer to a task: ``handle`` (off the loop: it takes the coordinator's
        lock) validates the task first, then takes the request; True when new, False for a
        duplicate."""
        async with abort_on_error(context, method, self._rejections):
            with self._gate.admit(context) as client:
                request = self._parse(request_type, raw)
                new = await self._off_loop(handle, client, request)
                self._coord.add_bytes(request.round, up=request.ByteSize())
                return ack_type(accepted=True, duplicate=not new, round=request.round)
        raise AssertionError("unreachable")


def _held(request: cpb.RoundRequest | cpb.PullModelRequest) -> Held:
    """What a request declares the client holds; a digest is empty or 32 bytes."""
    if len(request.held_model_digest) not in (0, 32):
        raise InvalidUpdate("held_model_digest must be empty or a 32-byte SHA-256 digest")
    return Held(mask_id=request.held_mask_id, model_version=int(request.held_model_version),
                model_digest=bytes(request.held_model_digest))


def _check_metrics(metrics: dict[str, float]) -> None:
    if len(metrics) > 64 or not all(np.isfinite(v) for v in metrics.values()):
        raise InvalidUpdate("header metrics must be at most 64 finite values")
