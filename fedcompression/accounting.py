"""Byte and entropy accounting of encoded tensors.

``payload_nbytes`` is the sum of the ``data`` lengths of every blob (what the codecs
control; the protobuf framing around them is counted by ``fedcore``).

``entropy_bound_bits`` is the empirical order-0 entropy of the symbols an encoded tensor
transmits -- a lower bound for any coder that codes those symbols independently with one
static model (a yardstick for bits/param, not a bound on every conceivable coder):

* positions: the presence bit of each of the ``numel`` elements as a Bernoulli stream,
  ``numel * H2(count / numel)``; 0 for dense tensors and for implied positions (the
  receiver holds the mask);
* values: the transmitted integer symbols -- the raw float words (32- or 16-bit) of
  fp32/fp16/bf16, the quantized integers of int8/int4, the centroid indices of
  clustered (0 bits when k == 1) -- each stream costed ``sum_s n_s * log2(n / n_s)``;
* side information sent as-is: codebook ``32 * k`` bits; quantization header
  ``32 + bits`` bits (float32 scale, zero point).

>>> empirical_entropy_bits(np.array([0, 0, 1, 1]))
4.0
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_shape, require, tensor_blobs
from .limits import DEFAULT_LIMITS, DecodeLimits
from .mask import validated_mask_codec
from .payload import EncodedMaskTensor, EncodedTensor, ImpliedPositions
from .tensor import validated_codecs


def payload_nbytes(enc: EncodedTensor | EncodedMaskTensor) -> int:
    """Sum of the transmitted ``data`` lengths of all blobs of ``enc``."""
    if isinstance(enc, EncodedMaskTensor):
        return len(enc.kept.blob.data)
    return sum(len(b.data) for b in tensor_blobs(enc.positions, enc.values))


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """Total order-0 empirical entropy, in bits, of a stream of integer symbols."""
    s = np.asarray(symbols).ravel()
    if s.size == 0:
        return 0.0
    if s.dtype.itemsize <= 2 and np.issubdtype(s.dtype, np.unsignedinteger):
        counts = np.bincount(s)
    else:
        counts = np.unique(s, return_counts=True)[1]
    counts = counts[counts > 0].astype(np.float64)
    return float(np.sum(counts * np.log2(s.size / counts)))


def bernoulli_bits(ones: int, n: int) -> float:
    """``n * H2(ones / n)``: the empirical entropy of a bit stream with ``ones`` set."""
    if n == 0 or ones in (0, n):
        return 0.0
    p = ones / n
    return n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def entropy_bound_bits(enc: EncodedTensor | EncodedMaskTensor, *,
                       limits: DecodeLimits = DEFAULT_LIMITS) -> float:
    """Empirical entropy lower bound (bits) of the symbols ``enc`` transmits (see module).

    The payload is validated like a decode (raises :class:`CodecError` when invalid).
    """
    require(isinstance(enc, (EncodedTensor, EncodedMaskTensor)), "?", "not an encoded tensor")
    numel = check_shape(enc.shape, enc.name, limits)
    if isinstance(enc, EncodedMaskTensor):
        validated_mask_codec(enc, numel, limits)
        return bernoulli_bits(enc.kept.count, numel)
    pcodec, vcodec, count = validated_codecs(enc, numel, limits)
    bits = 0.0
    if pcodec is not None and not isinstance(enc.positions, ImpliedPositions):
        bits += bernoulli_bits(count, numel)
    symbols, side_bits = vcodec.symbols(enc.values, count, tensor=enc.name, limits=limits)
    return bits + empirical_entropy_bits(symbols) + side_bits
