"""Building and running the coordinator's gRPC server.

``create_server(config)`` builds everything and binds the port (0 picks a free one) without
blocking, so tests run a real server in-process; ``serve(config)`` adds signal handling and
blocks until the run is over or SIGTERM/SIGINT arrives (then: stop taking new work, abandon
the open round cleanly — only completed rounds were ever persisted — and close the store).

The server is grpc's asyncio server on one event loop in its own thread
(:mod:`fedserver.event_loop`): a call in progress — a long-poll waiting for its task above
all — costs a coroutine and its buffers, not a thread, so one coordinator holds thousands
of clients. ``network.max_workers`` threads do the CPU work off the loop (decoding and
folding updates, encoding the model, store writes under the coordinator's lock).
Admission limits (:mod:`fedserver.stream_guard`) count and log every refusal. Memory:
the model, the transfers in flight (bounded by ``max_open_streams`` and
``max_open_downloads``) and about 45 KB per client in a round, nearly all of it gRPC's
per-call state (measured: docs/benchmarks.md, W3).
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_health.v1._async import HealthServicer

from fedcore.pb import coordinator_pb2
from fedserver.call_gate import CallGate
from fedserver.config import ServerConfig
from fedserver.coordinator import Coordinator
from fedserver.event_loop import EventLoopThread
from fedserver.metrics import MetricsEndpoint, serve_metrics
from fedserver.registration import shared_token_warning
from fedserver.request_parsing import RequestParser, parsing_first, raw_request_handlers
from fedserver.run_setup import server_evaluator
from fedserver.servicer import CoordinatorServicer
from fedserver.state_dir import StartMode
from fedserver.stream_guard import CallLimiter, StreamLimiter
from fedserver.tasks import TaskFactory
from fedserver.transport import Listener

log = logging.getLogger("fedserver.server")
SERVICE_NAME = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name
SHUTDOWN_LINGER_S = 3.0  # after the last round: time for waiting clients to hear SHUTDOWN


class BindError(OSError):
    """A configured port cannot be bound; the message names the key and the address."""


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    coordinator: Coordinator
    health: HealthServicer
    io: EventLoopThread  # the loop the server runs on
    executor: ThreadPoolExecutor  # CPU work off the loop
    calls: CallLimiter
    metrics: MetricsEndpoint | None = None  # network.metrics_port >= 0

    def enter_graceful_shutdown(self) -> None:
        """Health answers NOT_SERVING from now on, so probes and balancers stop sending."""
        self.io.run(self.health.enter_graceful_shutdown())

    def stop(self, grace: float | None = None) -> None:
        self.enter_graceful_shutdown()
        self.coordinator.stop()  # waiting long-polls answer WAIT
        self.io.run(self.server.stop(grace))
        if self.metrics is not None:
            self.metrics.stop()
        self.io.stop()
        self.executor.shutdown(wait=True)
        self.coordinator.close()


def _grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    net = config.network
    return [
        ("grpc.max_receive_message_length", net.max_message_bytes),
        ("grpc.max_send_message_length", net.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
        # gRPC core randomly CANCELs calls queued before the application picks them up
        # once more than 1,000 wait (all beyond 3,000): a burst of thousands of check-ins
        # lost 5-20% of its calls that way, unlogged. Admission is CallLimiter's job,
        # which counts and logs what it refuses, so core queues up to the same limit.
        ("grpc.server.max_pending_requests", net.max_concurrent_rpcs),
        ("grpc.server.max_pending_requests_hard_limit", net.max_concurrent_rpcs),
        # and core CANCELs a call left unrequested 30 s (a burst of 10,000 pulls); 300 s
        ("grpc.server_max_unrequested_time_in_server", 300),
    ]


def _enable_reflection(server: grpc.aio.Server) -> None:
    """Serve reflection as ``grpc.reflection.v1alpha`` and ``grpc.reflection.v1``.

    grpcio-reflection ships only the v1alpha servicer; v1's messages are the same on the
    wire (same fields and numbers), so its service is the v1alpha servicer under v1's name.
    """
    from grpc_reflection.v1alpha import reflection, reflection_pb2
    from grpc_reflection.v1alpha._async import ReflectionServicer

    v1 = "grpc.reflection.v1.ServerReflection"
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME, v1)
    servicer = ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(v1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}),))


def _add_raw_services(server: grpc.aio.Server, servicer: CoordinatorServicer,
                      health_servicer: HealthServicer, parser: RequestParser) -> None:
    """Both services with identity deserializers (see :mod:`fedserver.request_parsing`)."""
    coordinator_service = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"]
    health_service = health_pb2.DESCRIPTOR.services_by_name["Health"]
    server.add_generic_rpc_handlers((
        raw_request_handlers(coordinator_service, {m.name: getattr(servicer, m.name)
                                                   for m in coordinator_service.methods}),
        raw_request_handlers(health_service,
                             parsing_first(health_servicer, health_service, parser))))


def create_server(config: ServerConfig, *, evaluator: object | None = None,
                  start: StartMode = StartMode()) -> RunningServer:
    listener = Listener.from_config(config)  # before anything is built or written
    if evaluator is None:
        evaluator = server_evaluator(config)  # ConfigError naming evaluation.test_set
    coordinator = Coordinator(config, evaluator=evaluator, start=start)  # type: ignore[arg-type]
    executor = ThreadPoolExecutor(max_workers=config.network.max_workers,
                                  thread_name_prefix="fedserver-work")
    io = EventLoopThread(executor=executor)
    io.start()
    try:
        server, health_servicer, calls = io.run(_build_server(config, coordinator, executor))
        port = io.run(_bind(listener, server))
    except BaseException:
        io.stop()
        executor.shutdown(wait=False)
        coordinator.close()
        raise
    metrics = None
    if config.network.metrics_port >= 0:
        try:
            metrics = serve_metrics(coordinator.metrics, host=config.network.host,
                                    port=config.network.metrics_port)
        except OSError as exc:
            io.run(server.stop(None))
            io.stop()
            executor.shutdown(wait=False)
            coordinator.close()
            raise BindError(f"network.metrics_port: cannot bind {config.network.host}:"
                            f"{config.network.metrics_port} ({exc.strerror or exc})") from exc
        log.info("metrics on http://%s:%d/metrics", config.network.host, metrics.port)
    io.run(server.start())
    coordinator.start()
    for name in ("", SERVICE_NAME):
        io.run(health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING))
    log.info("coordinator listening on %s:%d with %s (state %s)", config.network.host, port,
             _transport_name(config), coordinator.state_dir)
    warning = shared_token_warning(config.auth)
    if warning is not None:
        log.warning("%s", warning)
    return RunningServer(server, port, coordinator, health_servicer, io, executor, calls,
                         metrics)


async def _build_server(config: ServerConfig, coordinator: Coordinator,
                        executor: ThreadPoolExecutor
                        ) -> tuple[grpc.aio.Server, HealthServicer, CallLimiter]:
    """Build on the loop it will run on (grpc.aio binds a server to the running loop)."""
    net = config.network
    calls = CallLimiter(limit=net.max_concurrent_rpcs,
                        on_reject=coordinator.metrics.call_rejected)
    streams = StreamLimiter(limit=net.open_streams_limit, idle_s=net.stream_idle_s,
                            slot_wait_s=net.stream_slot_wait_s,
                            on_reject=coordinator.metrics.call_rejected)
    server = grpc.aio.server(options=_grpc_options(config), interceptors=[calls, streams])
    tasks = TaskFactory(config, run_id=coordinator.run_id, clock=coordinator.clock)
    parser = RequestParser()
    gate = CallGate.from_config(config, is_registered=coordinator.is_registered)
    servicer = CoordinatorServicer(coordinator, gate, tasks, parser=parser,
                                   max_payload_bytes=net.max_payload_bytes, executor=executor,
                                   max_downloads=net.max_open_downloads)
    health_servicer = HealthServicer()
    _add_raw_services(server, servicer, health_servicer, parser)
    if net.reflection:
        _enable_reflection(server)
    return server, health_servicer, calls


async def _bind(listener: Listener, server: grpc.aio.Server) -> int:
    try:
        return listener.bind(server)
    except (RuntimeError, OSError):  # grpcio >= 1.6x raises instead of returning 0
        raise BindError(f"network.port: cannot bind {listener.address} (in use or not an "
                        f"address of this machine)") from None


def _transport_name(config: ServerConfig) -> str:
    if not config.tls.enabled:
        return "plaintext"
    return "mTLS" if config.tls.require_client_cert else "TLS"


def write_endpoint(running: RunningServer, config: ServerConfig) -> None:
    """Publish the bound port in ``<state_dir>/endpoint.json`` (useful with port 0)."""
    import json
    import os

    path = running.coordinator.state_dir / "endpoint.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": config.network.host, "port": running.port,
                               "metrics_port": running.metrics.port if running.metrics else None,
                               "pid": os.getpid()}))
    os.replace(tmp, path)


EXIT_FATAL = 3  # background work died (logged at CRITICAL); the run resumes on restart


def serve(config: ServerConfig, *, start: StartMode = StartMode()) -> int:
    running = create_server(config, start=start)
    write_endpoint(running, config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()
        running.coordinator.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set() and not running.coordinator.wait_finished(timeout=1.0):
        pass
    fatal = running.coordinator.fatal
    if not stop.is_set() and fatal is None:
        stop.wait(SHUTDOWN_LINGER_S)
    running.stop(grace=config.network.grace_s)
    if fatal is not None:
        log.critical("coordinator stopped after a fatal error: %s", fatal)
        return EXIT_FATAL
    log.info("coordinator stopped")
    return 0
