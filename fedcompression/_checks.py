"""Shared private plumbing: argument checks, shape arithmetic and the tensor CRC.

Kept in one place so that every codec validates the same way and raises the one
documented exception, :class:`~fedcompression.errors.CodecError`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import Any

from .errors import CodecError
from .limits import DecodeLimits
from .payload import Blob

#: numpy supports 64 dimensions; real tensors use far fewer.
MAX_NDIM = 32


def require(ok: bool, tensor: str, problem: str) -> None:
    """Raise ``CodecError(tensor, problem)`` unless ``ok``."""
    if not ok:
        raise CodecError(tensor, problem)


def is_int(value: Any) -> bool:
    """True for Python/numpy integers, False for bools (which are ints in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(count: Any, upper: int, tensor: str, what: str = "positions.count") -> int:
    """Validate ``0 <= count <= upper`` for a declared element count."""
    require(is_int(count), tensor, f"{what} must be an integer, got {type(count).__name__}")
    require(0 <= count <= upper, tensor, f"{what} {count} is outside [0, {upper}]")
    return int(count)


def check_shape(shape: Any, tensor: str, limits: DecodeLimits) -> int:
    """Validate a declared shape and return its element count (checked against limits)."""
    require(isinstance(shape, tuple), tensor, "shape must be a tuple of ints")
    require(len(shape) <= MAX_NDIM, tensor, f"shape has {len(shape)} > {MAX_NDIM} dimensions")
    for dim in shape:
        require(is_int(dim), tensor, f"shape entry {dim!r} is not an int")
        require(dim >= 0, tensor, f"shape entry {dim} is negative")
        require(dim <= limits.max_numel, tensor,
                f"shape entry {dim} exceeds the numel limit {limits.max_numel}")
    numel = math.prod(shape)
    require(numel <= limits.max_numel, tensor,
            f"numel {numel} exceeds the limit {limits.max_numel}")
    return numel


def check_blob_type(blob: Any, tensor: str, what: str) -> Blob:
    """Check that ``blob`` is a :class:`Blob` holding bytes (as the proto mapping makes)."""
    require(isinstance(blob, Blob), tensor, f"{what} is not a Blob")
    require(isinstance(blob.data, (bytes, bytearray, memoryview)), tensor,
            f"{what}.data is not bytes")
    return blob


def crc32_of(blobs: Iterable[Blob]) -> int:
    """CRC-32 (zlib) over the transmitted ``data`` of ``blobs`` in order (tensor.proto)."""
    crc = 0
    for blob in blobs:
        crc = zlib.crc32(blob.data, crc)
    return crc


def tensor_blobs(positions: Any, values: Any) -> list[Blob]:
    """The blobs of a tensor in CRC order: positions blob, codebook, values data/indices.

    Works on any payload objects (uses attribute names, tolerates missing ones), so it can
    run before the payload has been validated.
    """
    blobs = [getattr(positions, "blob", None)]
    blobs += [getattr(values, name, None) for name in ("codebook", "data", "indices")]
    return [b for b in blobs if isinstance(b, Blob)]
