"""LSB-first bit packing of small unsigned integers (1..8 bits each).

Layout (tensor.proto): value ``j`` occupies stream bits ``[j*bits, (j+1)*bits)``, least
significant bit first, and stream bit ``i`` is bit ``i % 8`` of byte ``i // 8``. This is
numpy's ``packbits(..., bitorder="little")`` applied to each value's bits. A packed stream
of ``count`` values has exactly ``ceil(count * bits / 8)`` bytes; padding bits are zero.

Widths 1, 2, 4 and 8 (bitmaps, int4, small codebooks) have vectorised fast paths; other
widths go through a bit matrix.

>>> pack_bits(np.array([1, 2, 3]), 2).hex()
'39'
>>> unpack_bits(bytes.fromhex("39"), 2, 3).tolist()
[1, 2, 3]
"""

from __future__ import annotations

import numpy as np


def packed_size(count: int, bits: int) -> int:
    """Bytes needed for ``count`` values of ``bits`` bits: ``ceil(count * bits / 8)``."""
    return (count * bits + 7) // 8


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integers ``0 <= v < 2**bits`` into LSB-first bytes."""
    _check_bits(bits)
    v = np.asarray(values).ravel()
    if v.size and (v.min() < 0 or int(v.max()) >= 1 << bits):
        raise ValueError(f"values must lie in [0, {1 << bits}) for {bits}-bit packing")
    v = v.astype(np.uint8)
    if bits == 8:
        return v.tobytes()
    if bits == 1:
        return np.packbits(v, bitorder="little").tobytes()
    if 8 % bits == 0:
        per_byte = 8 // bits
        padded = np.zeros(-(-v.size // per_byte) * per_byte, dtype=np.uint8)
        padded[: v.size] = v
        lanes = padded.reshape(-1, per_byte)
        out = np.zeros(lanes.shape[0], dtype=np.uint8)
        for lane in range(per_byte):
            out |= lanes[:, lane] << np.uint8(lane * bits)
        return out.tobytes()
    matrix = (v[:, None] >> np.arange(bits, dtype=np.uint8)) & np.uint8(1)
    return np.packbits(matrix.ravel(), bitorder="little").tobytes()


def unpack_bits(data: bytes | np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` values as a uint8 array.

    ``data`` must hold exactly ``ceil(count * bits / 8)`` bytes (padding is not checked
    here; see :func:`padding_is_zero`).
    """
    _check_bits(bits)
    if count < 0 or len(data) != packed_size(count, bits):
        raise ValueError(f"{len(data)} bytes cannot hold exactly {count} {bits}-bit values")
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw.copy()
    if bits == 1:
        return np.unpackbits(raw, count=count, bitorder="little")
    if 8 % bits == 0:
        per_byte = 8 // bits
        out = np.empty((raw.size, per_byte), dtype=np.uint8)
        mask = np.uint8((1 << bits) - 1)
        for lane in range(per_byte):
            out[:, lane] = (raw >> np.uint8(lane * bits)) & mask
        return out.ravel()[:count]
    matrix = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    widened = np.zeros((count, 8), dtype=np.uint8)
    widened[:, :bits] = matrix
    return np.packbits(widened, axis=1, bitorder="little").ravel()


def padding_is_zero(data: bytes | np.ndarray, used_bits: int) -> bool:
    """True when every bit at stream position ``>= used_bits`` of ``data`` is zero."""
    tail = used_bits % 8
    if len(data) == 0 or tail == 0:
        return True
    return (int(data[-1]) >> tail) == 0


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in 1..8, got {bits!r}")
