"""Keeping idle or hoarded streams from taking the server's worker threads.

Why: the synchronous gRPC server gives every call in progress one worker thread, and a
client-streaming call holds its thread while it waits for the next message; 32 idle
streams used to freeze every call, health checks included. Two invariants:

- :class:`StreamLimiter` (an interceptor) lets at most ``limit`` client-streaming or bidi
  calls run at once, refusing more at once with RESOURCE_EXHAUSTED, so the rest of the
  pool keeps serving health checks, long-polls and pulls;
- :class:`IdleStreamReaper` cancels an admitted stream that sent nothing for ``idle_s``
  seconds (a server-side read deadline), freeing its thread and its slot. One thread
  watches all streams, so guarding costs no thread per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

T = TypeVar("T")


class IdleStreamReaper:
    def __init__(self, *, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[int, tuple[float, grpc.ServicerContext]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="fedserver-idle-streams")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def guard(self, requests: Iterator[T], context: grpc.ServicerContext) -> Iterator[T]:
        """``requests``, with the call cancelled if it stays silent for ``idle_s``."""
        key = id(context)
        self._touch(key, context)
        try:
            for item in requests:
                self._touch(key, context)
                yield item
        finally:
            with self._lock:
                self._last.pop(key, None)

    def _touch(self, key: int, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._last[key] = (self._clock(), context)

    def _loop(self) -> None:
        period = min(1.0, self._idle_s / 4)
        while not self._stop.wait(period):
            now = self._clock()
            with self._lock:
                stale = [(k, ctx) for k, (t, ctx) in self._last.items() if now - t > self._idle_s]
                for k, _ in stale:
                    del self._last[k]
            for _, ctx in stale:
                ctx.cancel()  # the blocked read fails and the handler's thread is free


class StreamLimiter(grpc.ServerInterceptor):
    """Refuse client-streaming and bidi calls beyond ``limit`` open at once; the requests
    of every admitted one are read under ``reaper``'s idle deadline (so an idle stream
    cannot keep a slot either)."""

    def __init__(self, *, limit: int, reaper: IdleStreamReaper) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._reaper = reaper

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not handler.request_streaming:
            return handler
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._limited_stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.stream_unary_rpc_method_handler(
            self._limited_unary(handler.stream_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def _refuse(self, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"more than {self._limit} streams open; retry later")

    def _limited_unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            if not self._slots.acquire(blocking=False):
                self._refuse(context)
            try:
                return behavior(self._reaper.guard(requests, context), context)
            finally:
                self._slots.release()
        return call

    def _limited_stream(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            if not self._slots.acquire(blocking=False):
                self._refuse(context)
            try:
                yield from behavior(self._reaper.guard(requests, context), context)
            finally:
                self._slots.release()
        return call
