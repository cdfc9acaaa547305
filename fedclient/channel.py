"""The client's gRPC channel: TLS, keepalive, gRPC-level retries of UNAVAILABLE, size limits.

Only the unary calls get gRPC's transparent retries. Streams are retried by the daemon
itself: a transparently retried server stream whose server died mid-call was seen to hang
until its deadline instead of failing fast.
"""

from __future__ import annotations

import json

import grpc

from fedcore.pb import coordinator_pb2
from fedcore.tls import ClientTls
from fedcore.tls import open_channel as _open

SERVICE = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name

_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": SERVICE, "method": m} for m in ("Round", "ReportEvaluation")],
        "retryPolicy": {
            "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def open_channel(target: str, *, tls: ClientTls | None = None,
                 own_connection: bool = False) -> grpc.Channel:
    """Plaintext unless ``tls`` names a CA (then TLS, and mTLS with a client cert).

    ``own_connection``: do not share the process-wide subchannel (TCP connection) with
    other channels to the same target, so a pool's channels are separate connections."""
    extra = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    return _open(target, tls or ClientTls(), options=extra + [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 4 << 20),
        ("grpc.max_send_message_length", 4 << 20),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ])
