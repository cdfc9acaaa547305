"""The registered population: every client that checked in, kept in memory and written to
the run store in batches.

Why: population-level selection (``round.selection = poisson | uniform``) draws each
round's cohort from every registered client, not only from the ones long-polling now, and
the weight cap needs the population's claimed sizes. Writing each first check-in in its
own store transaction (one fsync each) made registering 10,000 clients take tens of
seconds on the serving path, so new or changed clients are queued and one background
thread writes each batch in one transaction.

Invariants: :meth:`touch` never blocks on the store and never raises; a client is part of
the population from its first check-in (or from the store, for clients of earlier
starts); a failed batch is logged, counted, and retried with the next batch, and on
:meth:`close` the queue is flushed once more. A crash loses at most the last
``flush_s`` of registrations, which those clients redo at their next check-in. Memory:
one dict entry per client (id + example count, about 150 bytes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from fedserver.store import StoreError

log = logging.getLogger("fedserver.clients")


class ClientRegistry:
    def __init__(self, *, write: Callable[[list[tuple[str, int]]], None],
                 registered: Iterable[str] = (), on_error: Callable[[], None] = lambda: None,
                 flush_s: float = 0.2) -> None:
        """``write``: stores a batch of (client id, examples) in one transaction;
        ``registered``: ids the store already holds (earlier starts of this run)."""
        self._write = write
        self._on_error = on_error
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._examples: dict[str, int] = {}  # clients seen by this process
        self._registered = frozenset(registered)
        self._pending: dict[str, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="fedserver-client-registry")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def touch(self, client_id: str, num_examples: int) -> None:
        """Record a check-in; queue a store write on first sight or a changed size."""
        with self._lock:
            if self._examples.get(client_id) == num_examples:
                return
            self._examples[client_id] = num_examples
            self._pending[client_id] = num_examples
        self._wake.set()

    def knows(self, client_id: str) -> bool:
        """Whether ``client_id`` checked in before (in this run, any start)."""
        with self._lock:
            return client_id in self._examples or client_id in self._registered

    def population(self) -> frozenset[str]:
        with self._lock:
            return self._registered | self._examples.keys()

    def examples(self) -> list[int]:
        """Claimed example counts of the clients seen by this process."""
        with self._lock:
            return list(self._examples.values())

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = list(self._pending.items()), {}
        if not batch:
            return
        try:
            self._write(batch)
        except StoreError as exc:
            log.warning("could not record %d clients (retrying with the next batch): %s",
                        len(batch), exc)
            self._on_error()
            with self._lock:
                self._pending = {**dict(batch), **self._pending}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._stop.wait(self._flush_s)  # gather a batch
            self._wake.clear()
            self.flush()
