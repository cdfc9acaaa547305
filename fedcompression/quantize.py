"""Uniform affine quantization with stochastic rounding (pure math, no wire format).

``value = scale * (q - zero_point)`` with ``q`` an unsigned ``bits``-bit integer.

Grid choice: the grid always contains 0 exactly (``q == zero_point``), so zeros of a
pruned tensor stay exactly zero, and covers ``[min(x, 0), max(x, 0)]``. ``scale`` is
rounded *up* to a float32 (the wire stores a float32) so the range stays covered.

Stochastic rounding: ``q = floor(t + u)`` with ``t = x / scale + zero_point`` and
``u ~ U[0, 1)`` from the caller's generator, so ``E[dequantize(q)] = x`` (unbiased) and
``|dequantize(q) - x| < scale`` for every element.

>>> q, scale, zp = quantize(np.array([-1.0, 0.0, 1.0]), 8, rng=np.random.default_rng(0))
>>> (int(q[1]) == zp, dequantize(q, scale, zp)[1])
(True, np.float32(0.0))
"""

from __future__ import annotations

import numpy as np

_F32_MAX = float(np.finfo(np.float32).max)


def quantize_grid(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """``(scale, zero_point)`` of a ``bits``-bit grid containing 0 and ``[lo, hi]``.

    Requires ``lo <= 0 <= hi``, both finite, and ``bits >= 2``. ``scale`` is a float32-representable value.
    """
    qmax = (1 << bits) - 1
    if hi - lo <= 0.0:
        return 1.0, 0
    if lo == 0.0:
        zero_point = 0
    elif hi == 0.0:
        zero_point = qmax
    else:  # both signs: keep at least one step on each side of zero
        zero_point = min(qmax - 1, max(1, round(-lo / (hi - lo) * qmax)))
    scale = max(hi / (qmax - zero_point) if zero_point < qmax else 0.0,
                -lo / zero_point if zero_point > 0 else 0.0)
    scale32 = np.float32(scale)
    if float(scale32) < scale:
        scale32 = np.nextafter(scale32, np.float32(np.inf))
    return float(min(float(scale32), _F32_MAX)), int(zero_point)


def quantize(values: np.ndarray, bits: int, *, rng: np.random.Generator
             ) -> tuple[np.ndarray, float, int]:
    """Quantize finite ``values`` to ``bits`` (2..8) with stochastic rounding.

    Returns ``(q, scale, zero_point)``: ``q`` uint8 of ``values``' shape.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in 2..8, got {bits!r}")
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    lo = min(float(x.min()), 0.0) if x.size else 0.0
    hi = max(float(x.max()), 0.0) if x.size else 0.0
    scale, zero_point = quantize_grid(lo, hi, bits)
    t = x / scale + zero_point
    t += rng.random(t.shape)
    # Grid points whose dequantized float32 would overflow are never used (only reachable
    # for |x| near float32's maximum); clipping there still errs by less than ``scale``.
    reach = int(min(_F32_MAX / scale, 1 << bits))
    q = np.clip(np.floor(t), max(0, zero_point - reach), min((1 << bits) - 1, zero_point + reach))
    q = q.astype(np.uint8)
    return q, scale, zero_point


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``scale * (q - zero_point)`` as float32 (the decoder's exact arithmetic)."""
    shifted = np.asarray(q).astype(np.float32) - np.float32(zero_point)
    return shifted * np.float32(scale)
