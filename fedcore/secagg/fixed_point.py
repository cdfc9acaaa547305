"""Floats to the ring and back: clipping, stochastic rounding, a modulus that cannot wrap.

Encoding (:class:`FixedPoint`): clip each coordinate to ``[-clip_range, clip_range]``,
scale by ``s = L / clip_range`` with ``L = 2^(value_bits - 1) - 1``, and round
stochastically: ``floor(y) + 1[u < y - floor(y)]`` with ``u`` uniform from a ChaCha20 stream
(:class:`fedcore.secure_noise.SecureGaussian`), so the rounding is unbiased and nobody can
predict it. The integer ``q`` in ``[-L, L]`` is stored as ``q mod M``.

No wrap (:func:`ring_bits_for`): a sum of ``n`` such integers lies in ``[-nL, nL]``, and
``nL < 2^(value_bits - 1 + ceil(log2 n))``, so ``ring_bits = value_bits + ceil(log2 n)``
represents every possible sum as a centred residue in ``(-M/2, M/2)``. Decoding a sum maps
the residue back to ``(-M/2, M/2)`` and divides by ``s``: exact for integers, whatever the
order of the additions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedcore.secagg.ring import check_ring_bits, modulus_mask
from fedcore.secure_noise import SecureGaussian


def ring_bits_for(value_bits: int, clients: int) -> int:
    """The smallest ring in which the sum of ``clients`` values of ``value_bits`` never wraps."""
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    return value_bits + math.ceil(math.log2(clients)) if clients > 1 else value_bits


@dataclass(frozen=True)
class FixedPoint:
    value_bits: int
    ring_bits: int
    clip_range: float

    def __post_init__(self) -> None:
        if not 2 <= self.value_bits <= 48:
            raise ValueError(f"value_bits must be in 2..48, got {self.value_bits}")
        check_ring_bits(self.ring_bits)
        if self.ring_bits < self.value_bits:
            raise ValueError(f"ring_bits ({self.ring_bits}) must be >= value_bits "
                             f"({self.value_bits})")
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise ValueError(f"clip_range must be finite and > 0, got {self.clip_range}")

    @property
    def levels(self) -> int:
        """L: the largest encoded magnitude."""
        return (1 << (self.value_bits - 1)) - 1

    @property
    def scale(self) -> float:
        return self.levels / self.clip_range

    @property
    def max_clients(self) -> int:
        """The most summands whose sum cannot wrap: n L <= 2^(ring_bits-1) - 1."""
        return ((1 << (self.ring_bits - 1)) - 1) // self.levels

    def quantize(self, values: np.ndarray, rng: SecureGaussian) -> np.ndarray:
        """Integers in ``[-L, L]`` (int64), stochastically rounded with ``rng``."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot encode non-finite values")
        y = np.clip(x, -self.clip_range, self.clip_range) * self.scale
        low = np.floor(y)
        up = rng.uniform(y.size) <= (y - low)  # uniform in (0, 1]: P(up) = y - low exactly
        return np.clip(low + up, -self.levels, self.levels).astype(np.int64)

    def to_ring(self, q: np.ndarray) -> np.ndarray:
        return q.astype(np.int64).view(np.uint64) & modulus_mask(self.ring_bits)

    def encode(self, values: np.ndarray, rng: SecureGaussian) -> np.ndarray:
        return self.to_ring(self.quantize(values, rng))

    def centred(self, total: np.ndarray) -> np.ndarray:
        """A ring sum as signed integers in ``(-M/2, M/2)`` (int64)."""
        half = np.uint64(1 << (self.ring_bits - 1))
        t = np.asarray(total, dtype=np.uint64)
        return np.where(t >= half, t.astype(np.int64) - (1 << self.ring_bits),
                        t.astype(np.int64))

    def decode_sum(self, total: np.ndarray) -> np.ndarray:
        """The float64 sum of the encoded values (exact integer sum, then one scaling)."""
        return self.centred(total).astype(np.float64) / self.scale

