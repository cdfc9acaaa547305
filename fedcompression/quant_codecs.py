"""Quantized value codecs: ``int8`` and ``int4`` (``QuantizedValues`` on the wire).

Math lives in :mod:`fedcompression.quantize` (stochastic rounding with the caller's
generator, grid containing 0). Packing: int8 one byte per value; int4 two per byte, low
nibble first (``pack_bits(q, 4)``), an unused last nibble zero.

Decoder checks: ``bits`` matches the codec, ``0 <= zero_point < 2**bits``, ``scale`` a
finite float32 and ``> 0`` unless every ``q`` equals ``zero_point``, exact data size,
zero padding nibble, and that ``scale * (q - zero_point)`` stays finite in float32.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ._checks import is_int, require
from .bits import pack_bits, packed_size, padding_is_zero, unpack_bits
from .codec import Framed, ValueCodec
from .framing import check_blob, frame, unframe
from .limits import DecodeLimits
from .payload import QuantizedValues, Values
from .quantize import dequantize, quantize

_F32_MAX = float(np.finfo(np.float32).max)


class _QuantCodec(Framed, ValueCodec):
    """Shared plumbing; subclasses fix ``bits``."""

    bits: ClassVar[int]

    @classmethod
    def handles(cls, payload: object) -> bool:
        return isinstance(payload, QuantizedValues) and payload.bits == cls.bits

    def encode(self, values: np.ndarray, *, rng: np.random.Generator, tensor: str) -> Values:
        q, scale, zero_point = quantize(values, self.bits, rng=rng)
        data = frame(pack_bits(q, self.bits), zstd=self.zstd)
        return QuantizedValues(bits=self.bits, scale=scale, zero_point=zero_point, data=data)

    def validate(self, payload: Values, count: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        require(self.handles(payload), tensor, f"values are not {self.bits}-bit quantized")
        p: QuantizedValues = payload  # type: ignore[assignment]
        require(is_int(p.zero_point) and 0 <= p.zero_point < 1 << self.bits, tensor,
                f"zero_point {p.zero_point!r} is outside [0, {1 << self.bits})")
        require(isinstance(p.scale, (int, float)) and not isinstance(p.scale, bool)
                and math.isfinite(p.scale) and abs(p.scale) <= _F32_MAX, tensor,
                f"scale {p.scale!r} is not a finite float32")
        size = packed_size(count, self.bits)
        check_blob(p.data, tensor=tensor, what="values.data", lo=size, hi=size, limits=limits)

    def _codes(self, payload: Values, count: int, tensor: str, limits: DecodeLimits
               ) -> np.ndarray:
        self.validate(payload, count, tensor=tensor, limits=limits)
        raw = unframe(payload.data, tensor=tensor, what="values.data")  # type: ignore[union-attr]
        require(padding_is_zero(raw, count * self.bits), tensor, "values padding is not zero")
        return unpack_bits(raw, self.bits, count)

    def decode(self, payload: Values, count: int, *, tensor: str,
               limits: DecodeLimits) -> np.ndarray:
        q = self._codes(payload, count, tensor, limits)
        p: QuantizedValues = payload  # type: ignore[assignment]
        if not q.size:
            return np.zeros(0, dtype=np.float32)
        lo, hi = int(q.min()) - p.zero_point, int(q.max()) - p.zero_point
        reach = max(abs(lo), abs(hi))
        require(reach == 0 or p.scale > 0, tensor, f"scale {p.scale!r} is not > 0")
        require(reach * float(np.float32(p.scale)) <= _F32_MAX, tensor,
                "scale * (q - zero_point) overflows float32")
        return dequantize(q, p.scale, p.zero_point)

    def symbols(self, payload: Values, count: int, *, tensor: str,
                limits: DecodeLimits) -> tuple[np.ndarray, int]:
        # Side information sent as-is: the float32 scale and the zero point.
        return self._codes(payload, count, tensor, limits), 32 + self.bits


class Int8Codec(_QuantCodec):
    """8-bit affine quantization, one byte per value; error < scale = range / 255."""

    codec_id = "int8"
    bits = 8


class Int4Codec(_QuantCodec):
    """4-bit affine quantization, two values per byte; error < scale = range / 15."""

    codec_id = "int4"
    bits = 4
