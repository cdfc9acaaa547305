"""Pruning masks on the wire: ``EncodedMaskTensor`` (tensor.proto ``MaskTensor``).

A mask tensor lists the *kept* elements of one tensor as a bitmap or delta varints
(whichever is smaller; never implied), with the CRC-32 of that blob. The receiver keeps
the decoded bool masks under the mask id and passes them to
:func:`~fedcompression.decode_tensor` for tensors whose positions are implied.

>>> m = np.array([[True, False], [False, True]])
>>> bool((decode_mask(encode_mask("w", m)) == m).all())
True
"""

from __future__ import annotations

import numpy as np

from ._checks import check_shape, crc32_of, is_int, require
from .limits import DEFAULT_LIMITS, DecodeLimits
from .payload import BitmapPositions, DeltaVarintPositions, EncodedMaskTensor
from .position_codecs import BitmapCodec, DeltaVarintCodec, smallest_explicit


def encode_mask(name: str, mask: np.ndarray, *, zstd: bool = True) -> EncodedMaskTensor:
    """Encode a bool ``mask`` (any shape); blobs zstd-framed when that is smaller."""
    require(isinstance(name, str), str(name), "name must be a str")
    require(isinstance(mask, np.ndarray) and mask.dtype == np.bool_, name,
            "mask must be a bool numpy array")
    kept = smallest_explicit(mask.reshape(-1), zstd=zstd, tensor=name)
    return EncodedMaskTensor(name=name, shape=tuple(int(d) for d in mask.shape), kept=kept,
                             crc32=crc32_of([kept.blob]))


def decode_mask(enc: EncodedMaskTensor, *, limits: DecodeLimits = DEFAULT_LIMITS
                ) -> np.ndarray:
    """Decode a mask tensor to a bool array of ``enc.shape``; only raises CodecError."""
    name = enc.name if isinstance(enc, EncodedMaskTensor) and isinstance(enc.name, str) else "?"
    require(isinstance(enc, EncodedMaskTensor), name, "not an EncodedMaskTensor")
    require(isinstance(limits, DecodeLimits), name, "limits must be a DecodeLimits")
    numel = check_shape(enc.shape, name, limits)
    codec = validated_mask_codec(enc, numel, limits)
    require(is_int(enc.crc32) and enc.crc32 == crc32_of([enc.kept.blob]), name, "crc32 mismatch")
    indices = codec.decode(enc.kept, numel, tensor=name, limits=limits)
    out = np.zeros(numel, dtype=bool)
    out[indices] = True
    return out.reshape(enc.shape)


def validated_mask_codec(enc: EncodedMaskTensor, numel: int, limits: DecodeLimits
                         ) -> BitmapCodec | DeltaVarintCodec:
    """The codec of ``enc.kept`` after validating its declared count and sizes."""
    kept = enc.kept
    require(isinstance(kept, (BitmapPositions, DeltaVarintPositions)), enc.name,
            "kept positions must be a bitmap or delta varints")
    codec = BitmapCodec() if isinstance(kept, BitmapPositions) else DeltaVarintCodec()
    codec.validate(kept, numel, tensor=enc.name, limits=limits)
    return codec
