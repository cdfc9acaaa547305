"""fedcompression: numpy-only tensor codecs of fedprune.

Imports numpy, zstandard and the standard library only (no torch, grpc or protobuf), so
it can be tested, fuzzed and benchmarked in isolation. (Named ``fedcompression``, not
``compression``: from Python 3.14 the standard library owns ``compression``, PEP 784.)

The wire format is specified in ``proto/fedprune/v1/tensor.proto``;
:mod:`fedcompression.payload` mirrors it as frozen dataclasses, which ``fedcore.wire``
maps to protobuf. Formats at a glance: ``docs/wire-formats.md``.

Public API:

* encoding -- :class:`TensorEncoding`, :func:`encode_tensor`, :func:`decode_tensor`,
  :class:`DecodeLimits`, :func:`encode_mask`, :func:`decode_mask`, and mask deltas
  :func:`encode_mask_delta`, :func:`apply_mask_delta`, :func:`is_shrink`;
* codecs -- :func:`register`, :func:`get_codec`, :func:`codec_class`,
  :func:`registered_ids` (see :mod:`fedcompression.codec` for the contract);
* building blocks -- :func:`pack_bits`, :func:`unpack_bits`, :func:`kmeans_1d`,
  :func:`quantize`, :func:`dequantize`;
* pruning -- :func:`magnitude_scores`, :func:`group_scores`, :func:`mask_from_scores`,
  :func:`allocate_masks`;
* accounting -- :func:`payload_nbytes`, :func:`entropy_bound_bits`,
  :func:`empirical_entropy_bits`;
* errors -- :class:`CodecError` (the one exception decoders raise on bad input),
  :class:`UnknownCodecError`.

>>> import numpy as np
>>> w = np.array([[0.5, 0.0, 0.0, -0.25]], dtype=np.float32)
>>> enc = encode_tensor("w", w, TensorEncoding(positions="explicit"))
>>> decode_tensor(enc).tolist()
[[0.5, 0.0, 0.0, -0.25]]
"""

from __future__ import annotations

from .accounting import empirical_entropy_bits, entropy_bound_bits, payload_nbytes
from .bits import pack_bits, unpack_bits
from .codec import Codec, PositionCodec, ValueCodec
from .encoding import TensorEncoding
from .errors import CodecError, UnknownCodecError
from .kmeans import kmeans_1d
from .limits import DecodeLimits
from .mask import decode_mask, encode_mask
from .mask_delta import apply_mask_delta, encode_mask_delta, is_shrink
from .payload import EncodedMaskTensor, EncodedTensor
from .pruning import (
    allocate_masks,
    group_scores,
    magnitude_scores,
    mask_from_scores,
    structured_granularity,
)
from .quantize import dequantize, quantize
from .registry import codec_class, get_codec, register, registered_ids
from .tensor import decode_tensor, encode_tensor

__all__ = [
    "Codec", "CodecError", "DecodeLimits", "EncodedMaskTensor", "EncodedTensor",
    "PositionCodec", "TensorEncoding", "UnknownCodecError", "ValueCodec",
    "allocate_masks", "apply_mask_delta", "codec_class", "decode_mask", "decode_tensor", "dequantize",
    "empirical_entropy_bits", "encode_mask", "encode_mask_delta", "encode_tensor", "entropy_bound_bits",
    "get_codec", "group_scores", "is_shrink", "kmeans_1d", "magnitude_scores", "mask_from_scores",
    "structured_granularity",
    "pack_bits", "payload_nbytes", "quantize", "register", "registered_ids", "unpack_bits",
]
