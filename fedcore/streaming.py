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
import mmap
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


MAX_EMPTY_CHUNKS = 8  # empty data chunks a stream may carry before it is refused


def _buffer(size: int) -> bytearray | mmap.mmap:
    """A writable buffer of ``size`` bytes whose memory is committed only as it is
    written: an anonymous mapping (zero pages on demand) beyond one chunk, so announcing
    a large payload and sending nothing costs no resident memory."""
    if size <= CHUNK_BYTES:
        return bytearray(size)
    return mmap.mmap(-1, size)


class PayloadAssembler:
    """Collects data slices for one header; ``finish`` returns the verified payload.

    Invariants: the payload is assembled into one buffer of exactly the announced
    ``header.total_bytes`` (itself <= ``max_bytes``, checked before anything is
    allocated), so a stream costs its payload and no per-chunk overhead whatever the
    chunking; more data than announced, or more than ``max_empty_chunks`` empty chunks
    (which would cost the receiver work for no data), is a :class:`StreamError`.
    """

    def __init__(self, header: pb.StreamHeader, *, max_bytes: int,
                 max_empty_chunks: int = MAX_EMPTY_CHUNKS) -> None:
        if header.total_bytes > max_bytes:
            raise PayloadTooLarge(
                f"payload of {header.total_bytes} bytes exceeds the limit of {max_bytes} bytes")
        if len(header.sha256) != 32:
            raise StreamError(f"stream header sha256 must be 32 bytes, got {len(header.sha256)}")
        self._header = header
        self._buffer = _buffer(header.total_bytes)
        self._received = 0
        self._empty = 0
        self._max_empty = max_empty_chunks

    def add(self, data: bytes) -> None:
        if not data:
            self._empty += 1
            if self._empty > self._max_empty:
                raise StreamError(f"stream carries more than {self._max_empty} empty chunks")
            return
        if len(data) > CHUNK_BYTES:  # the protocol's limit, whatever the gRPC message cap
            raise StreamError(f"a data chunk of {len(data)} bytes exceeds the {CHUNK_BYTES}-byte "
                              f"chunk limit")
        end = self._received + len(data)
        if end > self._header.total_bytes:
            raise StreamError(
                f"stream carries more than the announced {self._header.total_bytes} bytes")
        self._buffer[self._received:end] = data
        self._received = end

    def finish(self) -> memoryview:
        """The payload (a read-only view of the buffer: protobuf parses it without a copy)."""
        if self._received != self._header.total_bytes:
            raise StreamError(
                f"stream ended after {self._received} of {self._header.total_bytes} bytes")
        payload = memoryview(self._buffer).toreadonly()
        if hashlib.sha256(payload).digest() != self._header.sha256:
            raise StreamError("payload does not match the stream header's sha256")
        return payload
