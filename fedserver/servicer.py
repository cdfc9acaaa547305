"""The thin gRPC servicer: authenticate, count bytes, translate, call the coordinator.

Every handler runs inside :func:`fedserver.status.abort_on_error`, so domain errors become
precise status codes in one place. Bytes are counted from the serialized size of every
request and response message, attributed to the round of the task they belong to, and
only once that task was validated (a client cannot inflate the tally of a round it names).
"""

from __future__ import annotations

from collections.abc import Iterator

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


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, coordinator: Coordinator, authenticator: Authenticator,
                 tasks: TaskFactory, *, max_payload_bytes: int) -> None:
        self._coord = coordinator
        self._auth = authenticator
        self._tasks = tasks
        self._max_payload = max_payload_bytes
        self._rejections = coordinator.metrics.rejections

    def _client(self, context: grpc.ServicerContext) -> str:
        return self._auth.authenticate(dict(context.invocation_metadata()),
                                       peer=context.auth_context())

    def Round(self, request: cpb.RoundRequest, context: grpc.ServicerContext) -> cpb.Task:
        with abort_on_error(context, "Round", self._rejections):
            client = self._client(context)
            context.add_callback(self._coord.wake)
            decision, instructions = self._coord.check_in(
                client, num_examples=request.num_examples, max_wait_s=request.max_wait_ms / 1000,
                is_active=context.is_active)
            task = self._tasks.build(decision, instructions)
            rnd = decision.round if isinstance(decision, Assignment) else self._coord.current_round()
            self._coord.add_bytes(rnd, up=request.ByteSize(), down=task.ByteSize())
            return task
        raise AssertionError("unreachable")  # abort raises

    def PullModel(self, request: cpb.PullModelRequest,
                  context: grpc.ServicerContext) -> Iterator[cpb.ModelChunk]:
        with abort_on_error(context, "PullModel", self._rejections):
            client = self._client(context)
            payload, rnd = self._coord.model_payload(client, request.task_id, request.held_mask_id)
        header = cpb.ModelChunk(header=make_header(payload))
        self._coord.add_bytes(rnd, up=request.ByteSize(), down=header.ByteSize())
        yield header
        for data in split_payload(payload):
            chunk = cpb.ModelChunk(data=data)
            self._coord.add_bytes(rnd, down=chunk.ByteSize())
            yield chunk

    def PushUpdate(self, request_iterator: Iterator[cpb.UpdateChunk],
                   context: grpc.ServicerContext) -> cpb.PushAck:
        with abort_on_error(context, "PushUpdate", self._rejections):
            client = self._client(context)
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "header":
                raise StreamError("the first UpdateChunk must carry the header")
            header = first.header
            _check_metrics(header.metrics)
            ticket = self._coord.begin_push(client, header)  # validates the task first
            self._coord.add_bytes(header.round, up=first.ByteSize())
            if ticket is None:
                return cpb.PushAck(accepted=True, duplicate=True, round=header.round)
            assembler = PayloadAssembler(header.stream, max_bytes=self._max_payload)
            for chunk in request_iterator:
                if chunk.WhichOneof("part") != "data":
                    raise StreamError("only the first UpdateChunk may carry a header")
                self._coord.add_bytes(header.round, up=chunk.ByteSize())
                assembler.add(chunk.data)
            update = self._coord.decode_update(ticket, assembler.finish())
            new = self._coord.commit_push(ticket, update, dict(header.metrics))
            ack = cpb.PushAck(accepted=True, duplicate=not new, round=ticket.round)
            self._coord.add_bytes(header.round, down=ack.ByteSize())
            return ack
        raise AssertionError("unreachable")

    def ReportEvaluation(self, request: cpb.EvaluationReport,
                         context: grpc.ServicerContext) -> cpb.PushAck:
        with abort_on_error(context, "ReportEvaluation", self._rejections):
            client = self._client(context)
            new = self._coord.report_evaluation(client, request)  # validates the task first
            self._coord.add_bytes(request.round, up=request.ByteSize())
            return cpb.PushAck(accepted=True, duplicate=not new, round=request.round)
        raise AssertionError("unreachable")


    def Step(self, request: cpb.StepRequest, context: grpc.ServicerContext) -> cpb.StepAck:
        with abort_on_error(context, "Step", self._rejections):
            client = self._client(context)
            new = self._coord.protocol_step(client, request)  # validates the task first
            self._coord.add_bytes(request.round, up=request.ByteSize())
            return cpb.StepAck(accepted=True, duplicate=not new, round=request.round)
        raise AssertionError("unreachable")


def _check_metrics(metrics: dict[str, float]) -> None:
    if len(metrics) > 64 or not all(np.isfinite(v) for v in metrics.values()):
        raise InvalidUpdate("header metrics must be at most 64 finite values")
