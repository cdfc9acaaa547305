"""Mask deltas: a shrinking pruning mask sent as the positions removed from the held one.

While pruning, each new mask keeps a subset of the previous one, so a receiver that holds
the previous mask needs only the removed elements. They are encoded *among the base
mask's kept elements*: bit ``j`` of the removal set is the ``j``-th kept element of the
base in flat order. The result is therefore a subset of the base by construction, and the
positions cost ``count(base)`` bits (bitmap) or about one byte per removal (delta
varints), whichever is smaller, instead of ``numel`` bits for the full mask.

>>> old = np.array([True, True, False, True])
>>> new = np.array([True, False, False, True])
>>> bool((apply_mask_delta(encode_mask_delta("w", old, new), old) == new).all())
True
"""

from __future__ import annotations

import numpy as np

from ._checks import crc32_of, is_int, require
from .limits import DEFAULT_LIMITS, DecodeLimits
from .mask import validated_mask_codec
from .payload import EncodedMaskTensor
from .position_codecs import smallest_explicit


def is_shrink(old: np.ndarray, new: np.ndarray) -> bool:
    """True when ``new`` keeps only elements ``old`` keeps (same shape, both bool)."""
    return old.shape == new.shape and not bool(np.any(new & ~old))


def encode_mask_delta(name: str, old: np.ndarray, new: np.ndarray, *,
                      zstd: bool = True) -> EncodedMaskTensor:
    """The elements ``old`` keeps and ``new`` drops, indexed among ``old``'s kept ones."""
    require(isinstance(old, np.ndarray) and old.dtype == np.bool_ and isinstance(new, np.ndarray)
            and new.dtype == np.bool_, name, "masks must be bool numpy arrays")
    require(is_shrink(old, new), name, "the new mask is not a subset of the old one")
    removed = ~new.reshape(-1)[old.reshape(-1)]  # over old's kept elements, in flat order
    kept = smallest_explicit(removed, zstd=zstd, tensor=name)
    return EncodedMaskTensor(name=name, shape=tuple(int(d) for d in old.shape), kept=kept,
                             crc32=crc32_of([kept.blob]))


def apply_mask_delta(enc: EncodedMaskTensor, old: np.ndarray, *,
                     limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """``old`` without the removals of ``enc``; validates shape, sizes and CRC first."""
    name = enc.name if isinstance(enc, EncodedMaskTensor) and isinstance(enc.name, str) else "?"
    require(isinstance(enc, EncodedMaskTensor), name, "not an EncodedMaskTensor")
    require(isinstance(old, np.ndarray) and old.dtype == np.bool_, name,
            "the held mask must be a bool array")
    require(tuple(enc.shape) == old.shape, name,
            f"delta shape {tuple(enc.shape)} differs from the held mask's {old.shape}")
    flat = old.reshape(-1)
    kept_positions = np.flatnonzero(flat)
    codec = validated_mask_codec(enc, int(kept_positions.size), limits)
    require(is_int(enc.crc32) and enc.crc32 == crc32_of([enc.kept.blob]), name, "crc32 mismatch")
    removed = codec.decode(enc.kept, int(kept_positions.size), tensor=name, limits=limits)
    out = flat.copy()
    out[kept_positions[removed]] = False
    return out.reshape(old.shape)
