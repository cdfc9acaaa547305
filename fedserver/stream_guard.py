"""Admission control on the asyncio server: bounded calls, bounded streams, idle deadlines.

Why: on grpc.aio a waiting call costs no thread, so the limits that used to protect the
thread pool now protect memory, and a refusal must be visible: gRPC core's own
``maximum_concurrent_rpcs`` refuses silently, so the limits are enforced here, where each
refusal is counted (``fedprune_rejected_calls{method,code}``) and logged (the first one,
then a summary at most every ``LOG_EVERY_S``). Invariants:

- :class:`CallLimiter` admits at most ``limit`` calls of any kind at once (a waiting
  long-poll counts; a client in a round holds about 45 KB, docs/benchmarks.md W3); refused at
  once with RESOURCE_EXHAUSTED;
- :class:`StreamLimiter` lets at most ``limit`` client-streaming or bidi calls read their
  requests at once (what a push buffers is bounded by ``limit`` x the payload cap); a
  further stream waits for a slot up to ``idle_s`` (its requests stay in the transport's
  flow-control window meanwhile), then is refused with RESOURCE_EXHAUSTED; an admitted
  stream that sends nothing for ``idle_s`` is aborted with CANCELLED, freeing its slot.
  Health checks, long-polls and pulls are never queued behind streams.

A slot is released by the call's done callback, which gRPC runs however the call ends
(finished, aborted, cancelled by the client or by its deadline).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger("fedserver.admission")
LOG_EVERY_S = 10.0
Prelude = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
OnReject = Callable[[str, str], None]  # (method, status code name)


class RejectionLog:
    """Count every refusal and log it without flooding: the first at once, then a summary."""

    def __init__(self, *, what: str, on_reject: OnReject) -> None:
        self._what = what
        self._on_reject = on_reject
        self._unlogged = 0
        self._logged_at = float("-inf")

    def refused(self, method: str, code: grpc.StatusCode) -> None:
        self._on_reject(method, code.name)
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("refused %d call(s) with %s: %s (latest: %s)", self._unlogged,
                        code.name, self._what, method)
            self._unlogged, self._logged_at = 0, now


def with_prelude(handler: grpc.RpcMethodHandler, prelude: Prelude) -> grpc.RpcMethodHandler:
    """``handler`` with ``await prelude(request, context)`` run first; its result replaces
    the request (or request iterator). Works for all four kinds of aio handler."""
    behavior = (handler.unary_unary or handler.unary_stream or handler.stream_unary
                or handler.stream_stream)
    if handler.response_streaming and inspect.isasyncgenfunction(behavior):
        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request = await prelude(request, context)
            async for item in behavior(request, context):
                yield item
        call: Callable[..., Any] = streaming
    else:  # a coroutine; a streaming one writes with context.write
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await behavior(await prelude(request, context), context)
    factory = {(False, False): grpc.unary_unary_rpc_method_handler,
               (False, True): grpc.unary_stream_rpc_method_handler,
               (True, False): grpc.stream_unary_rpc_method_handler,
               (True, True): grpc.stream_stream_rpc_method_handler}[
        (handler.request_streaming, handler.response_streaming)]
    return factory(call, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


class CallLimiter(grpc.aio.ServerInterceptor):
    def __init__(self, *, limit: int, on_reject: OnReject) -> None:
        self._limit = limit
        self._open = 0
        self._log = RejectionLog(what=f"more than network.max_concurrent_rpcs = {limit} "
                                      "calls open", on_reject=on_reject)

    @property
    def open_calls(self) -> int:
        return self._open

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        async def admit(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._open >= self._limit:
                self._log.refused(method, grpc.StatusCode.RESOURCE_EXHAUSTED)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"more than {self._limit} calls open; retry later")
            self._open += 1
            context.add_done_callback(self._release)
            return request
        return with_prelude(handler, admit)

    def _release(self, _context: object) -> None:
        self._open -= 1


class StreamLimiter(grpc.aio.ServerInterceptor):
    def __init__(self, *, limit: int, idle_s: float, slot_wait_s: float,
                 on_reject: OnReject) -> None:
        self._limit = limit
        self._idle_s = idle_s
        self._slot_wait_s = slot_wait_s
        self._slots = asyncio.Semaphore(limit)  # binds to the loop of its first wait
        self._log = RejectionLog(what=f"no stream slot within {slot_wait_s:g} s (more than "
                                      f"network.max_open_streams = {limit} streams open)",
                                 on_reject=on_reject)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not handler.request_streaming:
            return handler
        method = details.method

        async def admit(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            slots = self._slots
            try:
                await asyncio.wait_for(slots.acquire(), self._slot_wait_s)
            except TimeoutError:
                self._log.refused(method, grpc.StatusCode.RESOURCE_EXHAUSTED)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"more than {self._limit} streams open; retry later")
            context.add_done_callback(lambda _ctx: slots.release())
            return _read_deadline(requests, context, self._idle_s)
        return with_prelude(handler, admit)


async def _read_deadline(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext,
                         idle_s: float) -> AsyncIterator[Any]:
    """``requests``, with the call aborted (CANCELLED) when it stays silent for ``idle_s``."""
    chunks = aiter(requests)
    while True:
        try:
            item = await asyncio.wait_for(anext(chunks), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            await context.abort(grpc.StatusCode.CANCELLED,
                                f"stream sent nothing for {idle_s:g} s")
        yield item
