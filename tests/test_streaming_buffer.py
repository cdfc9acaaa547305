"""Chunked payload assembly: one preallocated buffer of the announced size.

Threat model: docs/threat-model.md ("malicious clients"): tiny chunks used to cost a
Python object each (about 33 bytes of overhead per chunk, 30x amplification for one-byte
chunks), and a stream could carry empty chunks without end.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from fedcore.pb import coordinator_pb2 as pb
from fedcore.streaming import (
    MAX_EMPTY_CHUNKS,
    PayloadAssembler,
    PayloadTooLarge,
    StreamError,
    make_header,
)


def test_one_byte_chunks_cost_the_payload_and_no_per_chunk_overhead() -> None:
    payload = os.urandom(100_000)
    tracemalloc.start()
    try:
        assembler = PayloadAssembler(make_header(payload), max_bytes=1 << 20)
        for i in range(len(payload)):
            assembler.add(payload[i:i + 1])
        result = assembler.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bytes(result) == payload
    assert peak < 2 * len(payload), peak  # a list of 100,000 bytes objects: ~3.4 MB


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_announcing_a_large_payload_commits_memory_only_as_data_arrives() -> None:
    size = 200 << 20
    header = pb.StreamHeader(total_bytes=size, sha256=hashlib.sha256(b"").digest())
    before = _rss_kib()
    assembler = PayloadAssembler(header, max_bytes=256 << 20)
    assembler.add(b"x" * 1000)
    assert _rss_kib() - before < 16 * 1024  # not the announced 200 MiB
    with pytest.raises(StreamError, match="ended after 1000 of"):
        assembler.finish()


def test_limits_are_checked_before_allocating_and_while_adding() -> None:
    payload = b"abc"
    with pytest.raises(PayloadTooLarge):
        PayloadAssembler(pb.StreamHeader(total_bytes=1 << 40, sha256=bytes(32)),
                         max_bytes=256 << 20)
    assembler = PayloadAssembler(make_header(payload), max_bytes=10)
    with pytest.raises(StreamError, match="more than the announced 3 bytes"):
        assembler.add(b"abcd")
    assembler = PayloadAssembler(make_header(payload), max_bytes=10)
    for _ in range(MAX_EMPTY_CHUNKS):
        assembler.add(b"")
    with pytest.raises(StreamError, match="empty chunks"):
        assembler.add(b"")
    assembler = PayloadAssembler(make_header(payload), max_bytes=10)
    assembler.add(b"abd")
    with pytest.raises(StreamError, match="sha256"):
        assembler.finish()
