"""The ring Z_M with M = 2^ring_bits, its mask stream, and its wire packing.

A power-of-two modulus makes uniform sampling exact: the low ``ring_bits`` bits of a
uniform 64-bit word are uniform over Z_M, with no rejection and no modular bias. Masks are
expanded by ChaCha20 keyed with the *full* 32-byte seed (a pairwise key from
:mod:`fedcore.secagg.keys` or a self-mask seed ``b_u``), nonce zero: every seed is fresh per
round and per pair, so a (key, nonce) pair never repeats. ``ring_bits`` is at most 62, so
sums of two elements never overflow uint64 before the reduction.

Wire form of a ring vector: each element as ``ceil(ring_bits / 8)`` little-endian bytes,
element after element (byte-aligned, so a 20-bit ring costs 3 bytes per value).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

MAX_RING_BITS = 62
SEED_BYTES = 32


class RingError(ValueError):
    """A ring vector has the wrong length, width, or values outside Z_M."""


def check_ring_bits(ring_bits: int) -> None:
    if isinstance(ring_bits, bool) or not 2 <= ring_bits <= MAX_RING_BITS:
        raise RingError(f"ring_bits must be in 2..{MAX_RING_BITS}, got {ring_bits!r}")


def modulus_mask(ring_bits: int) -> np.uint64:
    return np.uint64((1 << ring_bits) - 1)


def expand(seed: bytes, count: int, ring_bits: int) -> np.ndarray:
    """``count`` uniform elements of Z_{2^ring_bits} from the ChaCha20 stream of ``seed``."""
    check_ring_bits(ring_bits)
    if len(seed) != SEED_BYTES:
        raise RingError(f"a mask seed is {SEED_BYTES} bytes, got {len(seed)}")
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    words = np.frombuffer(stream.update(bytes(8 * count)), dtype="<u8")
    return words & modulus_mask(ring_bits)


def add(a: np.ndarray, b: np.ndarray, ring_bits: int) -> np.ndarray:
    return (a + b) & modulus_mask(ring_bits)


def sub(a: np.ndarray, b: np.ndarray, ring_bits: int) -> np.ndarray:
    return (a - b) & modulus_mask(ring_bits)  # uint64 wrap-around, then reduce


def bytes_per_value(ring_bits: int) -> int:
    return (ring_bits + 7) // 8


def pack(values: np.ndarray, ring_bits: int) -> bytes:
    check_ring_bits(ring_bits)
    v = np.ascontiguousarray(values, dtype="<u8")
    if v.size and int(v.max()) >> ring_bits:
        raise RingError(f"values must lie in Z_2^{ring_bits}")
    width = bytes_per_value(ring_bits)
    return v.view(np.uint8).reshape(-1, 8)[:, :width].tobytes()


def unpack(data: bytes, ring_bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`; checks the length and that every value lies in Z_M."""
    check_ring_bits(ring_bits)
    width = bytes_per_value(ring_bits)
    if len(data) != count * width:
        raise RingError(f"{len(data)} bytes cannot hold exactly {count} values of "
                        f"{width} bytes")
    wide = np.zeros((count, 8), dtype=np.uint8)
    wide[:, :width] = np.frombuffer(data, dtype=np.uint8).reshape(count, width)
    values = wide.view("<u8").ravel().astype(np.uint64)
    if count and int(values.max()) >> ring_bits:
        raise RingError(f"a value lies outside Z_2^{ring_bits}")
    return values
