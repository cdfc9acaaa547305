"""Gaussian noise from a cryptographically secure stream, for DP aggregation.

DP noise must not be predictable by anyone who sees the code and a few outputs, so it is
drawn from ChaCha20 (``cryptography``) keyed with 256 bits from ``os.urandom``, never from
numpy's or Python's generators. 53-bit uniforms from the keystream go through the
Box-Muller transform in float64. A fixed key is allowed only through the explicit
``testing_seed`` (config ``dp.testing_seed``), which makes runs reproducible and is logged as
unsafe.
"""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

log = logging.getLogger("fedcore.secure_noise")
_TWO_53 = float(1 << 53)


class SecureGaussian:
    def __init__(self, *, testing_seed: int | None = None) -> None:
        if testing_seed is None:
            key = os.urandom(32)
        else:
            log.warning("DP noise uses the fixed testing seed %d: NOT PRIVATE, tests only",
                        testing_seed)
            key = hashlib.sha256(f"fedprune-dp-test/{testing_seed}".encode()).digest()
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def uniform(self, n: int) -> np.ndarray:
        """``n`` uniforms in (0, 1], 53 random bits each (also drives the stochastic
        rounding of secure aggregation's fixed-point encoding)."""
        words = np.frombuffer(self._stream.update(bytes(8 * n)), dtype="<u8")
        return ((words >> np.uint64(11)).astype(np.float64) + 1.0) / _TWO_53

    def normal(self, shape: tuple[int, ...], *, stddev: float) -> np.ndarray:
        if not (np.isfinite(stddev) and stddev >= 0):
            raise ValueError(f"stddev must be finite and >= 0, got {stddev!r}")
        n = int(np.prod(shape, dtype=np.int64))
        half = (n + 1) // 2
        u1, u2 = self.uniform(half), self.uniform(half)
        radius = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
        return (stddev * z[:n]).reshape(shape)
