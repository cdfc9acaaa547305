"""Vectorised unsigned LEB128 varints and the delta-varint position layout.

Varint layout (tensor.proto): 7 bits per byte, low group first, high bit set on every
byte but the last, at most 10 bytes. We emit the canonical (shortest) form and the
decoder rejects non-canonical ("overlong") ones -- a last byte of 0 in a multi-byte
varint -- so every value has exactly one encoding and fuzzed payloads cannot smuggle
in aliases. Decoding is loop-free: terminator bytes split the stream and
``np.add.reduceat`` sums the shifted 7-bit groups of each varint.

>>> encode_varints(np.array([0, 127, 128, 300], dtype=np.uint64)).hex()
'007f8001ac02'
>>> decode_varints(bytes.fromhex("007f8001ac02"), 4).tolist()
[0, 127, 128, 300]
"""

from __future__ import annotations

import numpy as np

MAX_VARINT_BYTES = 10
_SEVEN = np.uint64(7)


def encode_varints(values: np.ndarray) -> bytes:
    """Canonical LEB128 encoding of non-negative integers (< 2**64)."""
    v = np.asarray(values, dtype=np.uint64).ravel()
    if not v.size or int(v.max()) < 0x80:
        return v.astype(np.uint8).tobytes()
    lengths = np.ones(v.size, dtype=np.int64)
    for k in range(1, MAX_VARINT_BYTES):
        lengths += v >= np.uint64(1 << (7 * k))
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    for k in range(int(lengths.max())):
        sel = lengths > k
        group = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[sel] > k + 1).astype(np.uint64) << _SEVEN
        out[starts[sel] + k] = (group | more).astype(np.uint8)
    return out.tobytes()


def decode_varints(data: bytes | np.ndarray, count: int) -> np.ndarray:
    """Decode exactly ``count`` canonical varints filling ``data``; uint64 array.

    Raises ``ValueError`` (with the reason) on truncation, trailing bytes, varints
    longer than 10 bytes, values >= 2**64 or non-canonical encodings.
    """
    b = np.frombuffer(data, dtype=np.uint8)
    if count == 0 or b.size == 0:
        if count or b.size:
            raise ValueError(f"{b.size} bytes cannot hold exactly {count} varints")
        return np.zeros(0, dtype=np.uint64)
    ends = np.flatnonzero(b < 0x80)
    if b[-1] >= 0x80:
        raise ValueError("the last varint is truncated")
    if ends.size != count:
        raise ValueError(f"found {ends.size} varints, expected {count}")
    if ends.size == b.size:  # every varint is one byte: the common case for dense gaps
        return b.astype(np.uint64)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    _check_varint_lengths(b, ends, lengths)
    offsets = np.arange(b.size, dtype=np.int64) - np.repeat(starts, lengths)
    groups = (b & np.uint8(0x7F)).astype(np.uint64) << (offsets.astype(np.uint64) * _SEVEN)
    return np.add.reduceat(groups, starts)


def _check_varint_lengths(b: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> None:
    if int(lengths.max()) > MAX_VARINT_BYTES:
        raise ValueError(f"a varint is longer than {MAX_VARINT_BYTES} bytes")
    if np.any((lengths > 1) & (b[ends] == 0)):
        raise ValueError("non-canonical (overlong) varint")
    if np.any((lengths == MAX_VARINT_BYTES) & (b[ends] > 1)):
        raise ValueError("varint value exceeds 2**64 - 1")


def indices_to_deltas(indices: np.ndarray) -> np.ndarray:
    """Strictly increasing flat indices -> [first index, gap - 1, gap - 1, ...]."""
    idx = np.asarray(indices, dtype=np.uint64)
    deltas = np.empty_like(idx)
    if idx.size:
        deltas[0] = idx[0]
        np.subtract(idx[1:], idx[:-1], out=deltas[1:])
        deltas[1:] -= np.uint64(1)
    return deltas


def deltas_to_indices(deltas: np.ndarray, numel: int) -> np.ndarray:
    """Inverse of :func:`indices_to_deltas`, validated: int64 indices strictly increasing
    and ``< numel``. Raises ``ValueError`` otherwise."""
    if not deltas.size:
        return np.zeros(0, dtype=np.int64)
    if int(deltas.max()) >= numel:
        raise ValueError(f"a position delta is >= numel {numel}")
    # Every term is < numel <= 2**48, so the running sum can only wrap when
    # count * numel >= 2**63; the explicit monotonicity check then catches it.
    idx = np.cumsum(deltas + np.uint64(1)) - np.uint64(1)
    if deltas.size * numel >= 1 << 63 and np.any(idx[1:] <= idx[:-1]):
        raise ValueError("position indices overflow")
    if int(idx[-1]) >= numel:
        raise ValueError(f"position index {int(idx[-1])} is >= numel {numel}")
    return idx.astype(np.int64)
