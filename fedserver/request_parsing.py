"""Request bytes are parsed by fedprune, inside the handler, after authentication.

Why: when grpcio deserializes a request itself and the bytes are not a valid message,
it leaks memory per request (about 19 KiB, measured) and logs a full traceback, before
any of fedprune's checks run — a pre-authentication memory and log flood. So the
services are registered with *identity* deserializers (:func:`raw_request_handlers`:
the handler receives the bytes as they came) and each handler parses them itself with
:class:`RequestParser`. Invariants: an undecodable request is answered
INVALID_ARGUMENT (:class:`MalformedRequest`), never INTERNAL; nothing of its bytes is
echoed; the log gets at most one warning per ``interval_s`` (with the number of
malformed requests since the last one), never a traceback.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from fedcore.streaming import StreamError

M = TypeVar("M", bound=Message)
log = logging.getLogger("fedserver.requests")


class MalformedRequest(StreamError):
    """The request bytes are not a valid message of the method's type (INVALID_ARGUMENT)."""


class RequestParser:
    """Parses request bytes; counts and (rate-limited) logs the malformed ones."""

    def __init__(self, *, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_warning = float("-inf")
        self._suppressed = 0
        self.malformed = 0  # since start

    def __call__(self, message_type: type[M], raw: bytes) -> M:
        message = message_type()
        try:
            message.ParseFromString(raw)
        except (DecodeError, TypeError, ValueError):
            self._count(message_type.DESCRIPTOR.full_name, len(raw))
            raise MalformedRequest(f"request is not a valid {message_type.DESCRIPTOR.name}") \
                from None
        return message

    def _count(self, name: str, size: int) -> None:
        with self._lock:
            self.malformed += 1
            now = self._clock()
            if now - self._last_warning < self._interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last_warning = self._suppressed, 0, now
        log.warning("refused an undecodable %s request (%d bytes)%s", name, size,
                    f"; {suppressed} more since the last warning" if suppressed else "")


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def raw_request_handlers(service: ServiceDescriptor,
                         behaviors: Mapping[str, Callable[..., Any]]) -> grpc.GenericRpcHandler:
    """A handler for every method of ``service`` whose requests reach ``behaviors[name]``
    as bytes (no deserializer); responses are serialized as the method's output type."""
    handlers = {}
    for method in service.methods:
        factory = _FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            behaviors[method.name], request_deserializer=None,
            response_serializer=GetMessageClass(method.output_type).SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def parsing_first(servicer: object, service: ServiceDescriptor,
                  parser: RequestParser) -> dict[str, Callable[..., Any]]:
    """Behaviors that parse the (unary) request, then call ``servicer``'s method: for
    services that need no authentication first (health checks). The servicer's methods may
    be coroutines or async generators (grpc.aio's servicers); the behaviors follow suit."""
    def wrap(name: str, request_type: type[Message]) -> Callable[..., Any]:
        method = getattr(servicer, name)

        async def parsed(raw: bytes, context: Any) -> Message:
            try:
                return parser(request_type, raw)
            except MalformedRequest as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                raise  # abort raises; not reached

        if inspect.isasyncgenfunction(method):
            async def streaming(raw: bytes, context: Any) -> AsyncIterator[Any]:
                async for item in method(await parsed(raw, context), context):
                    yield item
            return streaming

        async def unary(raw: bytes, context: Any) -> Any:
            result = method(await parsed(raw, context), context)
            return await result if inspect.isawaitable(result) else result
        return unary

    behaviors = {}
    for m in service.methods:
        if m.client_streaming:
            raise ValueError(f"{service.full_name}/{m.name}: streaming requests need their own "
                             "parsing")
        behaviors[m.name] = wrap(m.name, GetMessageClass(m.input_type))
    return behaviors
