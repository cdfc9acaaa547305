"""Blob framing: optional per-blob zstd, chosen only when it makes the blob smaller.

Encoding (``frame``) compresses a raw byte string and keeps the zstd frame only if it is
strictly shorter than the raw bytes, so enabling zstd never costs bytes.

Decoding is split in two so that the tensor decoder can validate *every* declared size
before it decompresses anything (tensor.proto: sizes, counts and CRC first):

* ``check_blob`` validates framing, ``raw_size`` against the size the codec expects and
  against :class:`DecodeLimits` -- no decompression, no allocation;
* ``unframe`` then returns the raw bytes. The frame is checked to be exactly one zstd
  frame (block headers walked, no trailing bytes) whose declared content size, if any,
  equals ``raw_size``; it is then decompressed into a buffer of ``raw_size`` bytes, so
  the output is hard-capped whatever the frame says, and any further output is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


def unframe(blob: Blob, *, tensor: str, what: str) -> np.ndarray:
    """The raw bytes of a blob already accepted by :func:`check_blob`, as a uint8 array.

    Unframed data is returned as a read-only view (no copy); zstd data is decompressed
    straight into a fresh writable array of exactly ``raw_size`` bytes.
    """
    if blob.framing == "none":
        return np.frombuffer(blob.data, dtype=np.uint8)
    data, size = bytes(blob.data), blob.raw_size
    try:
        declared = zstandard.get_frame_parameters(data).content_size
        length = _zstd_frame_length(data, max_blocks=size // 1024 + 64)
    except (zstandard.ZstdError, ValueError) as exc:
        raise CodecError(tensor, f"{what}: bad zstd frame ({exc})") from None
    require(length == len(data), tensor, f"{what}: {len(data) - length} bytes after the zstd frame")
    if declared != _UNKNOWN_CONTENT_SIZE:
        require(declared == size, tensor,
                f"{what}: zstd frame declares {declared} bytes but raw_size says {size}")
    out = np.empty(size, dtype=np.uint8)
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            got = _read_into(reader, out)
            extra = reader.read(1)  # output beyond raw_size: never buffered, just detected
    except zstandard.ZstdError as exc:
        raise CodecError(tensor, f"{what}: zstd decompression failed ({exc})") from None
    require(got == size and not extra, tensor,
            f"{what}: zstd frame does not decompress to exactly raw_size = {size} bytes")
    return out


def _read_into(reader: zstandard.ZstdDecompressionReader, out: np.ndarray) -> int:
    """Fill ``out`` from ``reader`` (stops early only at end of stream); bytes read."""
    view, got = out.data, 0
    while got < len(view):
        n = reader.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _zstd_frame_length(data: bytes, *, max_blocks: int) -> int:
    """Length of the one zstd frame at the start of ``data`` (RFC 8878 framing), found by
    walking the block headers without decompressing; ``ValueError`` if malformed.

    ``max_blocks`` bounds the walk: real encoders emit blocks of up to 128 KiB of output,
    so a frame of ``raw_size`` bytes needs far fewer than ``raw_size / 1024`` blocks.
    """
    if data[:4] != _ZSTD_MAGIC:
        raise ValueError("not a zstd frame")
    pos = zstandard.frame_header_size(data)
    for _ in range(max_blocks):
        if pos + 3 > len(data):
            raise ValueError("truncated zstd frame")
        header = int.from_bytes(data[pos:pos + 3], "little")
        kind = (header >> 1) & 3  # 0 raw, 1 RLE (one byte of content), 2 compressed
        if kind == 3:
            raise ValueError("reserved zstd block type")
        pos += 3 + (1 if kind == 1 else header >> 3)
        if header & 1:  # last block; then the optional 4-byte content checksum
            return pos + (4 if data[4] & 0x04 else 0)
    raise ValueError("too many zstd blocks")
