"""The ring Z_M with M = 2^ring_bits, its mask stream, and its wire packing.

A power-of-two modulus makes uniform sampling exact: the low ``ring_bits`` bits of a
uniform 64-bit word are uniform over Z_M, with no rejection and no modular bias. Masks are
expanded by ChaCha20 keyed with the *full* 32-byte seed (a pairwise key from
:mod:`fedcore.secagg.keys` or a self-mask seed ``b_u``), nonce zero: every seed is fresh per
round and per pair, so a (key, nonce) pair never repeats. ``ring_bits`` is at most 62, so
sums of two elements never overflow uint64 before the reduction.

Wire form of a ring vector: the elements bit-packed at exactly ``ring_bits`` bits each,
LSB first (element ``j`` occupies stream bits ``[j*b, (j+1)*b)``, stream bit ``i`` is bit
``i % 8`` of byte ``i // 8``, as ``fedcompression.bits`` does for narrow widths), padded
with zero bits to a whole byte: ``ceil(count * ring_bits / 8)`` bytes.
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


_CHUNK = 1 << 16  # values per packing step (a multiple of 8: chunks stay byte-aligned)


def packed_size(count: int, ring_bits: int) -> int:
    return (count * ring_bits + 7) // 8


def pack(values: np.ndarray, ring_bits: int) -> bytes:
    check_ring_bits(ring_bits)
    v = np.ascontiguousarray(values, dtype="<u8").ravel()
    if v.size and int(v.max()) >> ring_bits:
        raise RingError(f"values must lie in Z_2^{ring_bits}")
    parts = []
    for at in range(0, v.size, _CHUNK):
        bits = np.unpackbits(v[at:at + _CHUNK].view(np.uint8).reshape(-1, 8), axis=1,
                             bitorder="little")[:, :ring_bits]
        parts.append(np.packbits(bits.ravel(), bitorder="little").tobytes())
    return b"".join(parts)


def unpack(data: bytes, ring_bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`; checks the length and that the padding bits are zero."""
    check_ring_bits(ring_bits)
    if count < 0 or len(data) != packed_size(count, ring_bits):
        raise RingError(f"{len(data)} bytes cannot hold exactly {count} values of "
                        f"{ring_bits} bits")
    raw = np.frombuffer(data, dtype=np.uint8)
    tail = (count * ring_bits) % 8
    if tail and int(raw[-1]) >> tail:
        raise RingError("padding bits after the last value must be zero")
    out = np.empty(count, dtype=np.uint64)
    step = _CHUNK * ring_bits // 8
    for i, at in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - at)
        bits = np.unpackbits(raw[i * step:i * step + packed_size(n, ring_bits)],
                             count=n * ring_bits, bitorder="little").reshape(n, ring_bits)
        wide = np.zeros((n, 64), dtype=np.uint8)
        wide[:, :ring_bits] = bits
        out[at:at + n] = np.packbits(wide, axis=1, bitorder="little").view("<u8").ravel()
    return out
