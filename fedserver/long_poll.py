"""Waking waiting ``Round`` long-polls one by one instead of all at once.

Why: when every long-poll sleeps on one condition variable, each state change wakes all C
waiters to find out that nothing changed for most of them, so a round of C clients costs
C^2 wake-ups and, on a thread-per-call server, one thread per waiter. Here each waiting
call owns one :class:`asyncio.Event` on the event loop that serves it, registered under
its client id; the coordinator rings exactly the clients a change concerns (the selected
cohort after a selection; everybody only when a step opens or the run stops).

Invariants: :meth:`wake` and :meth:`wake_all` are safe from any thread and never block on
the event loop; one batch of wake-ups costs one ``call_soon_threadsafe`` per loop, not one
per waiter; a waiter is registered exactly while its ``with waiting(...)`` block runs, so
a cancelled call (the client went away) leaves nothing behind. Memory: one event and one
list slot per waiting call (a few hundred bytes).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class LongPollWaiters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_client: dict[str, list[_Waiter]] = {}

    @contextmanager
    def waiting(self, client_id: str) -> Iterator[asyncio.Event]:
        """Register a waiter for ``client_id`` on the running loop; yields its event."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._by_client.setdefault(client_id, []).append(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                mine = self._by_client.get(client_id, [])
                mine.remove(waiter)
                if not mine:
                    self._by_client.pop(client_id, None)

    def wake(self, client_ids: Iterable[str]) -> None:
        """Set the events of every waiting call of these clients."""
        with self._lock:
            waiters = [w for c in client_ids for w in self._by_client.get(c, ())]
        _ring(waiters)

    def wake_all(self) -> None:
        with self._lock:
            waiters = [w for ws in self._by_client.values() for w in ws]
        _ring(waiters)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._by_client.values())


def _ring(waiters: list[_Waiter]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
    for loop, event in waiters:
        by_loop.setdefault(loop, []).append(event)
    for loop, events in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, events)
        except RuntimeError:  # the loop closed: its calls are gone, nobody is waiting
            pass


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()
