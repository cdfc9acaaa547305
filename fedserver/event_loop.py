"""One asyncio event loop in its own daemon thread, for the coordinator's grpc.aio server.

Why: the coordinator is built and stopped by plain synchronous code (``fedserver`` and
the tests call ``create_server`` / ``RunningServer.stop``), while grpc.aio needs a running
loop. Invariants: every coroutine of the server runs on this one loop; :meth:`run` blocks
the calling thread (never the loop's own) until its coroutine is done; ``executor`` is the
loop's default executor, so every ``run_in_executor(None, ...)`` of the server shares the
same few threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoopThread:
    def __init__(self, *, executor: Executor, name: str = "fedserver-io") -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(executor)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)

    def start(self) -> None:
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("EventLoopThread.run called from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop (after the server stopped), then close it."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()
