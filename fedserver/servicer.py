"""The thin gRPC servicer: admit, parse, count bytes, translate, call the coordinator.

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

from collections.abc import Callable, Iterator
from typing import TypeVar

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

R = TypeVar("R", cpb.EvaluationReport, cpb.StepRequest, cpb.TaskFailure)
A = TypeVar("A", cpb.PushAck, cpb.StepAck)


# tasks whose client needs the global model (key-exchange and unmask steps do not)
_NEEDS_MODEL = frozenset({cpb.TASK_KIND_TRAIN, cpb.TASK_KIND_EVALUATE,
                          cpb.TASK_KIND_MASKED_TRAIN})


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, coordinator: Coordinator, gate: CallGate,
                 tasks: TaskFactory, *, max_payload_bytes: int,
                 parser: RequestParser | None = None) -> None:
        self._coord = coordinator
        self._gate = gate
        self._tasks = tasks
        self._max_payload = max_payload_bytes
        self._parse = parser or RequestParser()
        self._rejections = coordinator.metrics.rejections

    def Round(self, raw: bytes, context: grpc.ServicerContext) -> cpb.Task:
        with abort_on_error(context, "Round", self._rejections), \
                self._gate.admit(context, registers=True) as client:
            request = self._parse(cpb.RoundRequest, raw)
            held = _held(request)  # validated before a task is assigned
            context.add_callback(self._coord.wake)
            decision, instructions = self._coord.check_in(
                client, num_examples=request.num_examples, max_wait_s=request.max_wait_ms / 1000,
                is_active=context.is_active)
            task = self._tasks.build(decision, instructions)
            if isinstance(decision, Assignment) and task.kind in _NEEDS_MODEL:
                self._add_model_fields(client, task, held)
            rnd = decision.round if isinstance(decision, Assignment) else self._coord.current_round()
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

    def PullModel(self, raw: bytes, context: grpc.ServicerContext) -> Iterator[cpb.ModelChunk]:
        with abort_on_error(context, "PullModel", self._rejections), \
                self._gate.admit(context) as client:  # to the last chunk
            request = self._parse(cpb.PullModelRequest, raw)
            payload, rnd = self._coord.model_payload(client, request.task_id, _held(request))
            header = cpb.ModelChunk(header=make_header(payload))
            self._coord.add_bytes(rnd, up=request.ByteSize(), down=header.ByteSize())
            yield header
            for data in split_payload(payload):
                chunk = cpb.ModelChunk(data=data)
                self._coord.add_bytes(rnd, down=chunk.ByteSize())
                yield chunk

    def PushUpdate(self, raw_chunks: Iterator[bytes],
                   context: grpc.ServicerContext) -> cpb.PushAck:
        with abort_on_error(context, "PushUpdate", self._rejections), \
                self._gate.admit(context) as client:
            request_iterator = (self._parse(cpb.UpdateChunk, raw) for raw in raw_chunks)
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

    def ReportEvaluation(self, raw: bytes, context: grpc.ServicerContext) -> cpb.PushAck:
        return self._answer("ReportEvaluation", raw, context, cpb.EvaluationReport,
                            self._coord.report_evaluation,
                            cpb.PushAck)

    def Step(self, raw: bytes, context: grpc.ServicerContext) -> cpb.StepAck:
        return self._answer("Step", raw, context, cpb.StepRequest,
                            self._coord.protocol_step,
                            cpb.StepAck)

    def ReportFailure(self, raw: bytes, context: grpc.ServicerContext) -> cpb.PushAck:
        return self._answer("ReportFailure", raw, context, cpb.TaskFailure,
                            self._coord.report_failure,
                            cpb.PushAck)

    def _answer(self, method: str, raw: bytes, context: grpc.ServicerContext,
                request_type: type[R],
                handle: Callable[[str, R], bool], ack_type: type[A]) -> A:
        """A unary answer to a task: ``handle`` validates the task first, then takes the
        request; True when new, False for a duplicate."""
        with abort_on_error(context, method, self._rejections), \
                self._gate.admit(context) as client:
            request = self._parse(request_type, raw)
            new = handle(client, request)
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
