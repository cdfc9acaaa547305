"""The coordinator's Prometheus metrics (``prometheus-client``) and their HTTP endpoint.

Operators watch a run without reading its logs: rounds completed and failed, updates
accepted and rejected by gRPC status code, every refused RPC by method and code, calls
refused by admission control, wire bytes per direction, phase durations, waiting and
active clients, and store write errors (a disk filling up shows here before a run
stalls). Each coordinator has its own registry, so several in one process (tests) do not
collide. The endpoint is served only
when ``network.metrics_port`` is >= 0 (-1, the default, is off; 0 picks a free port,
published as ``metrics_port`` in ``endpoint.json``).

Invariant: recording a metric never raises into the round path and takes no coordinator
lock; the gauges read the state machine's sizes when scraped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from fedserver.rejection_log import RejectionLog

PHASE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, float("inf"))


class CoordinatorMetrics:
    def __init__(self, *, waiting: Callable[[], int], active: Callable[[], int]) -> None:
        """``waiting``/``active``: the number of clients in a long-poll right now, and of
        selected clients whose result the open step still expects."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.rounds = Counter("fedprune_rounds", "Rounds closed, by outcome", ["status"],
                              registry=r)
        self.updates = Counter("fedprune_updates", "Pushed updates, by outcome and gRPC code",
                               ["result", "code"], registry=r)
        self.rejected_calls = Counter("fedprune_rejected_calls",
                                      "Calls refused by admission control, by method and code",
                                      ["method", "code"], registry=r)
        self.bytes = Counter("fedprune_wire_bytes", "Serialized message bytes",
                             ["direction"], registry=r)
        self.phase_seconds = Histogram("fedprune_phase_seconds",
                                       "Phase duration from open to close", ["kind"],
                                       buckets=PHASE_BUCKETS, registry=r)
        self.store_write_errors = Counter("fedprune_store_write_errors",
                                          "Failed writes of the run store, checkpoints or "
                                          "report", ["what"], registry=r)
        self.client_failures = Counter("fedprune_client_failures",
                                       "Tasks clients gave up (ReportFailure), by reason",
                                       ["reason"], registry=r)
        self.model_version = Gauge("fedprune_model_version", "Global model version",
                                   registry=r)
        Gauge("fedprune_waiting_clients", "Clients in a Round long-poll",
              registry=r).set_function(waiting)
        Gauge("fedprune_active_clients", "Selected clients the open step still awaits",
              registry=r).set_function(active)
        self.rejections = RejectionLog(registry=r)  # every refused RPC, by method and code
        for status in ("completed", "failed"):
            self.rounds.labels(status)
        for direction in ("up", "down"):
            self.bytes.labels(direction)

    def round_closed(self, *, completed: bool, version: int) -> None:
        self.rounds.labels("completed" if completed else "failed").inc()
        self.model_version.set(version)

    def update(self, *, code: str, duplicate: bool = False) -> None:
        """``code`` is the gRPC status name of the push's answer (``OK`` when accepted)."""
        result = "accepted" if code == "OK" and not duplicate else (
            "duplicate" if code == "OK" else "rejected")
        self.updates.labels(result, code).inc()

    def call_rejected(self, method: str, code: str) -> None:
        """A call refused before its handler ran (too many calls or streams open)."""
        self.rejected_calls.labels(method, code).inc()

    def wire_bytes(self, *, up: int, down: int) -> None:
        if up:
            self.bytes.labels("up").inc(up)
        if down:
            self.bytes.labels("down").inc(down)

    def phase(self, *, kind: str, seconds: float) -> None:
        self.phase_seconds.labels(kind).observe(max(0.0, seconds))

    def client_failure(self, reason: str) -> None:
        self.client_failures.labels(reason).inc()

    def write_error(self, what: str) -> None:
        self.store_write_errors.labels(what).inc()


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` HTTP server; ``stop()`` closes its socket."""

    server: WSGIServer
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(metrics: CoordinatorMetrics, *, host: str, port: int) -> MetricsEndpoint:
    """Serve ``metrics`` on ``host:port`` (0 picks a free port) in a daemon thread."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsEndpoint(server=server, port=int(server.server_port))
