"""Encoded-tensor payloads: plain data mirroring ``proto/fedprune/v1/tensor.proto``.

These frozen dataclasses are the boundary between the numpy codecs (this package) and the
protobuf mapping (``fedcore.wire``): each class has exactly the fields of the message of the
same name, so the mapping is field-for-field and the codecs never see protobuf. The
semantics of every field (bit order, varint layout, CRC coverage) are documented once, in
the .proto file; this module does not repeat them.

A tensor is ``(positions, values)``: ``positions is None`` means dense (every element, in C
order); otherwise ``values`` hold only the present elements in ascending flat index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FramingName = Literal["none", "zstd"]
FloatFormatName = Literal["fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class Blob:
    """Bytes as transmitted; ``raw_size`` is the length after unframing."""

    data: bytes
    framing: FramingName = "none"
    raw_size: int = 0


@dataclass(frozen=True)
class BitmapPositions:
    blob: Blob
    count: int


@dataclass(frozen=True)
class DeltaVarintPositions:
    blob: Blob
    count: int


@dataclass(frozen=True)
class ImpliedPositions:
    """Positions are the kept entries of mask ``mask_id`` that the receiver holds."""

    mask_id: str
    count: int


Positions = BitmapPositions | DeltaVarintPositions | ImpliedPositions


@dataclass(frozen=True)
class RawValues:
    format: FloatFormatName
    data: Blob


@dataclass(frozen=True)
class QuantizedValues:
    bits: int
    scale: float
    zero_point: int
    data: Blob


@dataclass(frozen=True)
class ClusteredValues:
    codebook: Blob
    index_bits: int
    indices: Blob


Values = RawValues | QuantizedValues | ClusteredValues


@dataclass(frozen=True)
class EncodedTensor:
    name: str
    shape: tuple[int, ...]
    positions: Positions | None
    values: Values
    crc32: int


@dataclass(frozen=True)
class EncodedMaskTensor:
    """One tensor of a pruning mask: the kept positions (bitmap or delta-varint)."""

    name: str
    shape: tuple[int, ...]
    kept: BitmapPositions | DeltaVarintPositions
    crc32: int
