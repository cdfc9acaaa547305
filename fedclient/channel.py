"""The client's gRPC channel: keepalive, gRPC-level retries of UNAVAILABLE, size limits.

Only the unary calls get gRPC's transparent retries. Streams are retried by the daemon
itself: a transparently retried server stream whose server died mid-call was seen to hang
until its deadline instead of failing fast.
"""

from __future__ import annotations

import json

import grpc

from fedcore.pb import coordinator_pb2

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


def open_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=[
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
