"""Run records in SQLite (stdlib): runs, rounds, clients, and the latest checkpoint.

The store is the coordinator's memory across restarts. A round is recorded completed in
the same transaction that points ``latest_checkpoint`` at its (already durable) checkpoint,
so after a kill the coordinator resumes from exactly the last completed round. Round rows
also carry what the run report shows: status, bytes per direction, time split, metrics.

The ``checkpoints`` table lists the checkpoints the run may resume from, newest first, with
their SHA-256: rotation keeps the last ``keep`` of them by these rows (never by file name,
so files of another run in the folder cannot push the run's own out), in the same
transaction that records the round. Every failed write raises :class:`StoreError` and
leaves the store as it was.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedserver.checkpoint import CheckpointRef

STORE_NAME = "fedprune.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created REAL NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL,
    version INTEGER NOT NULL, mask_id TEXT NOT NULL, started REAL NOT NULL, closed REAL NOT NULL,
    selected INTEGER NOT NULL, accepted INTEGER NOT NULL,
    bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL,
    timings TEXT NOT NULL, metrics TEXT NOT NULL, clients TEXT NOT NULL,
    client_metrics TEXT NOT NULL DEFAULT '{}', measurements TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    num_examples INTEGER NOT NULL, updates INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    round INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL);
"""


class StoreError(Exception):
    """The run store could not be opened, read or written (disk full, I/O error, not a
    database); a failed write changed nothing."""


@dataclass(frozen=True)
class RoundRecord:
    round: int
    status: str  # completed | failed
    reason: str
    version: int
    mask_id: str
    started: float
    closed: float
    selected: int
    accepted: int
    bytes_up: int
    bytes_down: int
    timings: dict[str, float]
    metrics: dict[str, float]
    clients: list[str]
    client_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)  # nested by role


class RunStore:
    """Thread-safe; every write is its own transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Re-entrant: ``record_round(before_commit=...)`` reads the store inside its write.
        self._lock = threading.RLock()
        self._staged_config: tuple[dict[str, Any], dict[str, Any]] | None = None
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False,
                                       isolation_level=None)
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(rounds)")}
                for column in ("client_metrics", "measurements"):  # stores written before v2
                    if column not in columns:
                        self._db.execute(f"ALTER TABLE rounds ADD COLUMN {column} TEXT NOT "
                                         "NULL DEFAULT '{}'")
        except sqlite3.Error as exc:
            raise StoreError(f"run store {path} cannot be opened ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, statements: list[tuple[str, tuple[Any, ...]]], *,
            before_commit: Callable[[], None] | None = None) -> None:
        """One transaction; ``before_commit`` runs inside it (it sees the new rows) and an
        exception there, or in any statement or the COMMIT, rolls everything back."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, args in statements:
                        self._db.execute(sql, args)
                    if before_commit is not None:
                        before_commit()
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        try:
                            self._db.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass  # the connection rolls back by itself when it cannot
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    def ensure_run(self, run_id: str, config: dict[str, Any]) -> str:
        """Return the stored run id, creating the run on first start."""
        row = self._one("SELECT run_id FROM runs ORDER BY created LIMIT 1")
        if row:
            return str(row[0])
        self._tx([("INSERT INTO runs VALUES (?, ?, ?)", (run_id, time.time(), json.dumps(config)))])
        return run_id

    def stage_config_change(self, config: dict[str, Any], *, change: dict[str, Any]) -> None:
        """Remember an accepted config change; :meth:`commit_config_change` writes it once
        the run is known to resume under it (a later refusal must leave the store as it
        was)."""
        self._staged_config = (config, change)

    def commit_config_change(self) -> None:
        """Write the staged change, if any (see :meth:`replace_config`)."""
        staged, self._staged_config = self._staged_config, None
        if staged is not None:
            self.replace_config(staged[0], change=staged[1])

    def replace_config(self, config: dict[str, Any], *, change: dict[str, Any]) -> None:
        """Make ``config`` the run's configuration, appending ``change`` (what changed,
        when) to the ``config_changes`` list in the same transaction."""
        history = [*self.get_state("config_changes", []), change]
        self._tx([("UPDATE runs SET config = ?", (json.dumps(config),)),
                  ("INSERT OR REPLACE INTO state VALUES ('config_changes', ?)",
                   (json.dumps(history),))])

    def set_state(self, key: str, value: Any) -> None:
        self._tx([("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, json.dumps(value)))])

    def get_state(self, key: str, default: Any = None) -> Any:
        row = self._one("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(row[0]) if row else default

    def record_round(self, rec: RoundRecord, *, checkpoint: CheckpointRef | None = None,
                     keep_checkpoints: int = 2,
                     before_commit: Callable[[], None] | None = None) -> list[str]:
        """Record a round (and its checkpoint as the latest) in one transaction.

        Returns the checkpoint names rotated out of the store (all but the newest
        ``keep_checkpoints``); the caller removes those files once this returned. An
        exception from ``before_commit`` (e.g. the report rewrite) rolls the record back."""
        stmts = [("INSERT OR REPLACE INTO rounds VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            rec.round, rec.status, rec.reason, rec.version, rec.mask_id, rec.started, rec.closed,
            rec.selected, rec.accepted, rec.bytes_up, rec.bytes_down, json.dumps(rec.timings),
            json.dumps(rec.metrics), json.dumps(rec.clients), json.dumps(rec.client_metrics),
            json.dumps(rec.measurements)))]
        stmts += [("UPDATE clients SET updates = updates + 1 WHERE client_id = ?", (c,))
                  for c in rec.clients]
        stmts.append(("INSERT OR REPLACE INTO state VALUES ('last_round', ?)", (str(rec.round),)))
        rotated: list[str] = []
        if checkpoint is not None:
            stmts.append(("INSERT OR REPLACE INTO state VALUES ('latest_checkpoint', ?)",
                          (json.dumps(checkpoint.name),)))
            stmts.append(("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                          (checkpoint.round, checkpoint.name, checkpoint.sha256)))
            kept = [checkpoint, *(c for c in self.checkpoints() if c.round != checkpoint.round)]
            rotated = [c.name for c in kept[keep_checkpoints:] if c.name != checkpoint.name]
            stmts += [("DELETE FROM checkpoints WHERE round = ?", (c.round,))
                      for c in kept[keep_checkpoints:]]
        self._tx(stmts, before_commit=before_commit)
        return rotated

    def checkpoints(self) -> list[CheckpointRef]:
        """The checkpoints the run may resume from, newest first."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT name, round, sha256 FROM checkpoints "
                                        "ORDER BY round DESC").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc
        return [CheckpointRef(name=str(n), round=int(r), sha256=str(d)) for n, r, d in rows]

    def rewind(self, checkpoint: CheckpointRef) -> None:
        """Resume from an earlier recorded checkpoint: rounds and checkpoints after its
        round are forgotten (they will run again), and it becomes the latest."""
        self._tx([("DELETE FROM rounds WHERE round > ?", (checkpoint.round,)),
                  ("DELETE FROM checkpoints WHERE round > ?", (checkpoint.round,)),
                  ("INSERT OR REPLACE INTO state VALUES ('last_round', ?)",
                   (str(checkpoint.round),)),
                  ("INSERT OR REPLACE INTO state VALUES ('latest_checkpoint', ?)",
                   (json.dumps(checkpoint.name),)),
                  ("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                   (checkpoint.round, checkpoint.name, checkpoint.sha256))])

    def update_round_metrics(self, round_: int, metrics: dict[str, float],
                             client_metrics: dict[str, dict[str, float]] | None = None) -> None:
        """Merge metrics (and per-client metrics) into a recorded round, e.g. evaluation."""
        row = self._one("SELECT metrics, client_metrics FROM rounds WHERE round = ?", (round_,))
        if row is None:
            return
        merged = {**json.loads(row[0]), **metrics}
        clients = json.loads(row[1])
        for client, values in (client_metrics or {}).items():
            clients[client] = {**clients.get(client, {}), **values}
        self._tx([("UPDATE rounds SET metrics = ?, client_metrics = ? WHERE round = ?",
                   (json.dumps(merged), json.dumps(clients), round_))])

    def last_completed_round(self) -> int:
        row = self._one("SELECT MAX(round) FROM rounds WHERE status = 'completed'")
        return int(row[0]) if row and row[0] is not None else 0

    def touch_clients(self, clients: list[tuple[str, int]]) -> None:
        """Record (client id, examples) pairs, first sight or changed size, in one transaction."""
        now = time.time()
        self._tx([("INSERT INTO clients VALUES (?, ?, ?, ?, 0) ON CONFLICT(client_id) DO UPDATE "
                   "SET last_seen = excluded.last_seen, num_examples = excluded.num_examples",
                   (client_id, now, now, num_examples)) for client_id, num_examples in clients])

    def client_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT client_id FROM clients")]

    def rounds(self) -> list[RoundRecord]:
        with self._lock:
            try:
                rows = self._db.execute("SELECT * FROM rounds ORDER BY round").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc
        return [RoundRecord(*r[:11], *(json.loads(x) for x in r[11:16])) for r in rows]

    def run_info(self) -> tuple[str, float, dict[str, Any]] | None:
        row = self._one("SELECT run_id, created, config FROM runs ORDER BY created LIMIT 1")
        return (str(row[0]), float(row[1]), json.loads(row[2])) if row else None
