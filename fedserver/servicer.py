"""The thin gRPC servicer (grpc.aio): authenticate, count bytes, translate, call the
coordinator.

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
from fedserver.auth import Authenticator
from fedserver.coordinator import Coordinator
from fedserver.round_state import Assignment
from fedserver.status import abort_on_error
from fedserver.tasks import TaskFactory
from fedserver.updates import InvalidUpdate

T = TypeVar("T")


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    """Handlers are coroutines on the server's event loop (:mod:`fedserver.server`): a
    waiting call costs no thread. Work that can take long — a coordinator call that takes
    its lock, decoding and folding an update, encoding the model — runs on ``executor``
    (a few threads), so the loop keeps serving while it happens."""

    def __init__(self, coordinator: Coordinator, authenticator: Authenticator,
                 tasks: TaskFactory, *, max_payload_bytes: int, executor: Executor,
                 max_downloads: int) -> None:
        """``max_downloads``: model downloads streaming at once; each holds about one chunk
        in flight, so a burst of C pulls costs ``max_downloads`` chunks, not C (the rest
        wait their turn as coroutines)."""
        self._coord = coordinator
        self._auth = authenticator
        self._tasks = tasks
        self._max_payload = max_payload_bytes
        self._executor = executor
        self._downloads = asyncio.Semaphore(max_downloads)

    def _client(self, context: grpc.aio.ServicerContext) -> str:
        return self._auth.authenticate(dict(context.invocation_metadata() or ()),
                                       peer=context.auth_context())

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def Round(self, request: cpb.RoundRequest,
                    context: grpc.aio.ServicerContext) -> cpb.Task:
        async with abort_on_error(context):
            client = self._client(context)
            decision, instructions = await self._coord.check_in(
                client, num_examples=request.num_examples, max_wait_s=request.max_wait_ms / 1000)
            task = self._tasks.build(decision, instructions)
            rnd = decision.round if isinstance(decision, Assignment) else self._coord.current_round()
            self._coord.add_bytes(rnd, up=request.ByteSize(), down=task.ByteSize())
            return task
        raise AssertionError("unreachable")  # abort raises

    async def PullModel(self, request: cpb.PullModelRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.ModelChunk]:
        async with abort_on_error(context):
            client = self._client(context)
            payload, rnd = await self._off_loop(self._coord.model_payload, client,
                                                request.task_id, request.held_mask_id)
        async with self._downloads:
            header = cpb.ModelChunk(header=make_header(payload))
            self._coord.add_bytes(rnd, up=request.ByteSize(), down=header.ByteSize())
            yield header
            for data in split_payload(payload):
                chunk = cpb.ModelChunk(data=data)
                self._coord.add_bytes(rnd, down=chunk.ByteSize())
                yield chunk

    async def PushUpdate(self, request_iterator: AsyncIterator[cpb.UpdateChunk],
                         context: grpc.aio.ServicerContext) -> cpb.PushAck:
        async with abort_on_error(context):
            client = self._client(context)
            chunks = aiter(request_iterator)
            first = await anext(chunks, None)
            if first is None or first.WhichOneof("part") != "header":
                raise StreamError("the first UpdateChunk must carry the header")
            header = first.header
            _check_metrics(header.metrics)
            ticket = await self._off_loop(self._coord.begin_push, client, header)
            self._coord.add_bytes(header.round, up=first.ByteSize())
            if ticket is None:
                return cpb.PushAck(accepted=True, duplicate=True, round=header.round)
            assembler = PayloadAssembler(header.stream, max_bytes=self._max_payload)
            async for chunk in chunks:
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

    async def ReportEvaluation(self, request: cpb.EvaluationReport,
                               context: grpc.aio.ServicerContext) -> cpb.PushAck:
        async with abort_on_error(context):
            client = self._client(context)
            # validates the task first
            new = await self._off_loop(self._coord.report_evaluation, client, request)
            self._coord.add_bytes(request.round, up=request.ByteSize())
            return cpb.PushAck(accepted=True, duplicate=not new, round=request.round)
        raise AssertionError("unreachable")

    async def Step(self, request: cpb.StepRequest,
                   context: grpc.aio.ServicerContext) -> cpb.StepAck:
        async with abort_on_error(context):
            client = self._client(context)
            # validates the task first
            new = await self._off_loop(self._coord.protocol_step, client, request)
            self._coord.add_bytes(request.round, up=request.ByteSize())
            return cpb.StepAck(accepted=True, duplicate=not new, round=request.round)
        raise AssertionError("unreachable")


def _check_metrics(metrics: dict[str, float]) -> None:
    if len(metrics) > 64 or not all(np.isfinite(v) for v in metrics.values()):
        raise InvalidUpdate("header metrics must be at most 64 finite values")
