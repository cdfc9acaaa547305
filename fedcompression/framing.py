"""Blob framing: optional per-blob zstd, chosen only when it makes the blob smaller.

Encoding (``frame``) compresses a raw byte string and keeps the zstd frame only if it is
strictly shorter than the raw bytes, so enabling zstd never costs bytes.

Decoding is split in two so that the tensor decoder can validate *every* declared size
before it decompresses anything (tensor.proto: sizes, counts and CRC first):

* ``check_blob`` validates framing, ``raw_size`` against the size the codec expects and
  against :class:`DecodeLimits` -- no decompression, no allocation;
* ``unframe`` then returns the raw bytes. zstd output is hard-capped at ``raw_size``: the
  frame header's content size is compared with ``raw_size`` first and never trusted for
  allocation, frames without a content size are decompressed with
  ``max_output_size=raw_size``, and trailing data after the one frame is rejected.
"""

from __future__ import annotations

from typing import Any

import zstandard

from ._checks import check_blob_type, is_int, require
from .errors import CodecError
from .limits import DecodeLimits
from .payload import Blob

#: zstd level for every framed blob. Level 1 is the fastest standard level and, on the
#: W2 payloads (packed indices, quantized bytes, varints, bitmaps, floats), compresses as
#: well as or better than the default level 3 (docs/benchmarks.md, W2).
ZSTD_LEVEL = 1
_UNKNOWN_CONTENT_SIZE = zstandard.CONTENTSIZE_UNKNOWN


def frame(raw: bytes, *, zstd: bool) -> Blob:
    """Wrap ``raw`` in a :class:`Blob`, zstd-framed only when enabled *and* smaller.

    >>> frame(b"abc", zstd=True).framing   # too short to shrink
    'none'
    >>> frame(bytes(4096), zstd=True).framing
    'zstd'
    """
    if zstd and raw:
        packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
        if len(packed) < len(raw):
            return Blob(data=packed, framing="zstd", raw_size=len(raw))
    return Blob(data=bytes(raw), framing="none", raw_size=len(raw))


def check_blob(blob: Any, *, tensor: str, what: str, lo: int, hi: int,
               limits: DecodeLimits) -> Blob:
    """Validate a blob's header fields: framing, ``lo <= raw_size <= hi``, limits.

    Does not touch the payload bytes beyond their length.
    """
    blob = check_blob_type(blob, tensor, what)
    require(blob.framing in ("none", "zstd"), tensor, f"{what}: unknown framing {blob.framing!r}")
    size = blob.raw_size
    require(is_int(size) and size >= 0, tensor, f"{what}: raw_size {size!r} is not a size")
    require(size <= limits.max_raw_bytes, tensor,
            f"{what}: raw_size {size} exceeds the limit {limits.max_raw_bytes}")
    if lo == hi:
        require(size == lo, tensor, f"{what}: raw_size {size}, expected {lo}")
    else:
        require(lo <= size <= hi, tensor, f"{what}: raw_size {size} is outside [{lo}, {hi}]")
    if blob.framing == "none":
        require(len(blob.data) == size, tensor,
                f"{what}: {len(blob.data)} bytes but raw_size says {size}")
    return blob


def unframe(blob: Blob, *, tensor: str, what: str) -> bytes:
    """Return the raw bytes of a blob already accepted by :func:`check_blob`."""
    if blob.framing == "none":
        return bytes(blob.data)
    size = blob.raw_size
    try:
        declared = zstandard.get_frame_parameters(bytes(blob.data)).content_size
    except zstandard.ZstdError as exc:
        raise CodecError(tensor, f"{what}: bad zstd frame header ({exc})") from None
    if declared != _UNKNOWN_CONTENT_SIZE:
        require(declared == size, tensor,
                f"{what}: zstd frame declares {declared} bytes but raw_size says {size}")
    else:
        require(size > 0, tensor, f"{what}: zstd frame without content size for 0 bytes")
    try:
        raw = zstandard.ZstdDecompressor().decompress(
            blob.data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise CodecError(tensor, f"{what}: zstd decompression failed ({exc})") from None
    require(len(raw) == size, tensor, f"{what}: zstd yielded {len(raw)} bytes, expected {size}")
    return raw

