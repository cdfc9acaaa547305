"""Encode and decode one named tensor: the ``EncodedTensor`` of tensor.proto.

Encoding picks positions per :class:`~fedcompression.encoding.TensorEncoding`, encodes
the present values with the registered value codec, and stamps the CRC-32 over the
transmitted blobs.

Decoding never trusts the payload. In order, before anything is decompressed or a
tensor-sized array allocated: the shape (numel and every dimension against
:class:`DecodeLimits`), the payload kinds (each must be decodable by exactly one
registered codec), every declared count and blob size (``validate``), the CRC-32. Only
then are blobs unframed (zstd output capped at the declared size), indices and values
decoded (with range/order/finiteness checks) and scattered into a zeroed float32 array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import check_shape, crc32_of, is_int, require, tensor_blobs
from .codec import PositionCodec, ValueCodec
from .encoding import TensorEncoding
from .limits import DEFAULT_LIMITS, DecodeLimits
from .payload import EncodedTensor, ImpliedPositions, Positions
from .position_codecs import ImpliedCodec, smallest_explicit
from .registry import position_decoder, value_codec, value_decoder


def encode_tensor(name: str, array: np.ndarray, encoding: TensorEncoding, *,
                  mask: np.ndarray | None = None, mask_id: str = "",
                  rng: np.random.Generator | None = None, seed: int = 0) -> EncodedTensor:
    """Encode ``array`` (any float dtype and shape, finite) as ``encoding`` says.

    ``mask`` (bool, ``array``'s shape) marks the kept elements: elements outside it are
    pruned -- never sent (dense: sent as 0) and decoded as 0, in every positions mode.
    Without a mask, explicit positions are the nonzero elements. ``mask_id``
    names the receiver's copy of the mask for implied positions. Randomness (stochastic
    rounding, k-means seeding) comes from ``rng``, else ``default_rng(seed)``.
    Raises :class:`CodecError` on bad arguments or non-finite input.
    """
    require(isinstance(name, str), str(name), "name must be a str")
    require(isinstance(encoding, TensorEncoding), name, "encoding must be a TensorEncoding")
    flat = _finite_float32(name, array)
    present = _flat_mask(name, mask, np.shape(array))
    if present is not None:
        flat = np.where(present, flat, np.float32(0))
    if rng is None:
        rng = np.random.default_rng(seed)
    require(isinstance(rng, np.random.Generator), name, "rng must be a numpy Generator")
    codec = value_codec(encoding.values).from_options(clusters=encoding.clusters,
                                                      zstd=encoding.zstd)
    mode = encoding.positions
    if mode == "auto":
        mode = "implied" if mask_id else "smallest"
    positions, values = _MODES[mode](name, flat, present, codec, encoding.zstd, mask_id, rng)
    return EncodedTensor(name=name, shape=tuple(int(d) for d in np.shape(array)),
                         positions=positions, values=values,
                         crc32=crc32_of(tensor_blobs(positions, values)))


def decode_tensor(enc: EncodedTensor, *, mask: np.ndarray | None = None,
                  limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode ``enc`` into a C-contiguous float32 array of ``enc.shape``.

    ``mask`` is the receiver's bool mask of this tensor, required for implied positions
    (shape ``enc.shape``, exactly ``positions.count`` set entries); that it is the mask
    named by ``positions.mask_id`` is the caller's responsibility. Raises only
    :class:`CodecError` for any invalid payload or argument.
    """
    name = enc.name if isinstance(enc, EncodedTensor) and isinstance(enc.name, str) else "?"
    require(isinstance(enc, EncodedTensor), name, "not an EncodedTensor")
    require(isinstance(limits, DecodeLimits), name, "limits must be a DecodeLimits")
    numel = check_shape(enc.shape, name, limits)
    pcodec, vcodec, count = validated_codecs(enc, numel, limits)
    require(is_int(enc.crc32) and enc.crc32 == crc32_of(tensor_blobs(enc.positions, enc.values)),
            name, "crc32 mismatch")
    if pcodec is None:
        return vcodec.decode(enc.values, count, tensor=name, limits=limits).reshape(enc.shape)
    implied = isinstance(enc.positions, ImpliedPositions)
    indices = pcodec.decode(enc.positions, numel, tensor=name, limits=limits,  # type: ignore[arg-type]
                            mask=_flat_mask(name, mask, enc.shape) if implied else None)
    values = vcodec.decode(enc.values, count, tensor=name, limits=limits)
    if count == numel:  # validated strictly increasing indices < numel: all present
        return values.reshape(enc.shape)
    out = np.zeros(numel, dtype=np.float32)
    out[indices] = values
    return out.reshape(enc.shape)


def validated_codecs(enc: EncodedTensor, numel: int, limits: DecodeLimits
                      ) -> tuple[PositionCodec | None, ValueCodec, int]:
    """Dispatch the payloads to codecs and validate every declared size (no decoding)."""
    name, pcodec, count = enc.name, None, numel
    if enc.positions is not None:
        pcodec = position_decoder(enc.positions, tensor=name)
        pcodec.validate(enc.positions, numel, tensor=name, limits=limits)
        count = enc.positions.count
    vcodec = value_decoder(enc.values, tensor=name)
    vcodec.validate(enc.values, count, tensor=name, limits=limits)
    return pcodec, vcodec, count


def _finite_float32(name: str, array: Any) -> np.ndarray:
    require(isinstance(array, (np.ndarray, np.generic)), name,
            f"expected a numpy array, got {type(array).__name__}")
    require(np.issubdtype(array.dtype, np.floating), name,
            f"dtype {array.dtype} is not a floating dtype")
    with np.errstate(over="ignore"):
        flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    require(bool(np.isfinite(flat).all()), name,
            "array has non-finite values (or values beyond the float32 range)")
    return flat


def _flat_mask(name: str, mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A caller's bool mask of the tensor, shape-checked and flattened (None stays None)."""
    if mask is None:
        return None
    if isinstance(mask, np.generic):  # a 0-d tensor's mask may arrive as a numpy scalar
        mask = np.asarray(mask)
    require(isinstance(mask, np.ndarray) and mask.dtype == np.bool_, name,
            "mask must be a bool array")
    require(mask.shape == tuple(shape), name, f"mask shape {mask.shape} != tensor shape {shape}")
    return mask.reshape(-1)


_Parts = tuple[Positions | None, Any]


def _dense(name: str, flat: np.ndarray, present: np.ndarray | None, codec: ValueCodec,
           zstd: bool, mask_id: str, rng: np.random.Generator) -> _Parts:
    return None, codec.encode(flat, rng=rng, tensor=name)


def _explicit(name: str, flat: np.ndarray, present: np.ndarray | None, codec: ValueCodec,
              zstd: bool, mask_id: str, rng: np.random.Generator) -> _Parts:
    keep = flat != 0 if present is None else present
    positions = smallest_explicit(keep, zstd=zstd, tensor=name)
    return positions, codec.encode(flat[keep], rng=rng, tensor=name)


def _implied(name: str, flat: np.ndarray, present: np.ndarray | None, codec: ValueCodec,
             zstd: bool, mask_id: str, rng: np.random.Generator) -> _Parts:
    require(present is not None, name, "implied positions need the mask")
    positions = ImpliedCodec().encode(present, tensor=name, mask_id=mask_id)  # type: ignore[arg-type]
    return positions, codec.encode(flat[present], rng=rng, tensor=name)


def _smallest(name: str, flat: np.ndarray, present: np.ndarray | None, codec: ValueCodec,
              zstd: bool, mask_id: str, rng: np.random.Generator) -> _Parts:
    """``auto`` without a mask id: dense or explicit, whichever has fewer payload bytes."""
    options = [mode(name, flat, present, codec, zstd, mask_id, rng) for mode in (_dense, _explicit)]
    return min(options, key=lambda parts: sum(len(b.data) for b in tensor_blobs(*parts)))


_MODES: dict[str, Callable[..., _Parts]] = {
    "dense": _dense, "explicit": _explicit, "implied": _implied, "smallest": _smallest,
}
