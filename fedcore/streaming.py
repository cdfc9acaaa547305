"""Chunked streaming of one serialized payload message over a gRPC stream.

A payload (``ModelPayload`` or ``UpdatePayload``) is serialized once and sent as a
``StreamHeader`` (size + SHA-256) followed by data slices of at most ``CHUNK_BYTES``, so
models far above gRPC's default 4 MiB message limit move without raising limits. The
receiver checks the announced size against its own cap *before* reading any data, refuses
a slice larger than ``CHUNK_BYTES``, and checks the digest after the last slice; a
payload is only parsed once it is complete and intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from fedcore.pb import coordinator_pb2 as pb

CHUNK_BYTES = 1 << 20


class StreamError(ValueError):
    """A chunked stream is malformed, truncated or does not match its header."""


class PayloadTooLarge(StreamError):
    """The announced or received payload exceeds the receiver's limit."""


def make_header(payload: bytes) -> pb.StreamHeader:
    return pb.StreamHeader(total_bytes=len(payload), sha256=hashlib.sha256(payload).digest())


def split_payload(payload: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield consecutive slices; an empty payload yields nothing."""
    view = memoryview(payload)
    for start in range(0, len(payload), chunk_bytes):
        yield bytes(view[start:start + chunk_bytes])


class PayloadAssembler:
    """Collects data slices for one header; ``finish`` returns the verified payload.

    Invariant: never holds more than ``header.total_bytes`` (itself <= ``max_bytes``).
    """

    def __init__(self, header: pb.StreamHeader, *, max_bytes: int) -> None:
        if header.total_bytes > max_bytes:
            raise PayloadTooLarge(
                f"payload of {header.total_bytes} bytes exceeds the limit of {max_bytes} bytes")
        if len(header.sha256) != 32:
            raise StreamError(f"stream header sha256 must be 32 bytes, got {len(header.sha256)}")
        self._header = header
        self._parts: list[bytes] = []
        self._received = 0

    def add(self, data: bytes) -> None:
        if len(data) > CHUNK_BYTES:  # the protocol's limit, whatever the gRPC message cap
            raise StreamError(f"a data chunk of {len(data)} bytes exceeds the {CHUNK_BYTES}-byte "
                              f"chunk limit")
        self._received += len(data)
        if self._received > self._header.total_bytes:
            raise StreamError(
                f"stream carries more than the announced {self._header.total_bytes} bytes")
        self._parts.append(data)

    def finish(self) -> bytes:
        if self._received != self._header.total_bytes:
            raise StreamError(
                f"stream ended after {self._received} of {self._header.total_bytes} bytes")
        payload = b"".join(self._parts)
        self._parts = []
        if hashlib.sha256(payload).digest() != self._header.sha256:
            raise StreamError("payload does not match the stream header's sha256")
        return payload
