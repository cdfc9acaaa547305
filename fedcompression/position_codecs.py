"""Position codecs: ``bitmap``, ``delta_varint`` and ``implied`` (``Positions`` on the wire).

Encoders take a flat bool array ``present``; decoders return the present flat indices,
strictly increasing int64 (the order values are stored in).

* ``bitmap`` -- ``ceil(numel / 8)`` bytes, LSB-first; best above ~1/8 density.
* ``delta_varint`` -- first index, then ``gap - 1`` per present element, LEB128; about
  one byte per present element while gaps are < 128, so best for sparse tensors.
* ``implied`` -- no bytes at all: the receiver already holds the mask (by id).

Decoder checks: exact bitmap size, zero padding bits and popcount == ``count``;
varint count, canonical form, no trailing bytes, indices strictly increasing and
``< numel``; implied mask of the right size with ``count`` set entries.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_count, require
from .bits import packed_size, padding_is_zero
from .codec import Framed, PositionCodec
from .errors import CodecError
from .framing import check_blob, frame, unframe
from .limits import DecodeLimits
from .payload import BitmapPositions, DeltaVarintPositions, ImpliedPositions, Positions
from .varint import (
    MAX_VARINT_BYTES,
    decode_varints,
    deltas_to_indices,
    encode_varints,
    indices_to_deltas,
)


class BitmapCodec(Framed, PositionCodec):
    """One bit per element, LSB-first."""

    codec_id = "bitmap"

    @classmethod
    def handles(cls, payload: object) -> bool:
        return isinstance(payload, BitmapPositions)

    def encode(self, present: np.ndarray, *, tensor: str, mask_id: str = "") -> Positions:
        bits = np.packbits(present.astype(bool), bitorder="little").tobytes()
        count = int(np.count_nonzero(present))
        return BitmapPositions(blob=frame(bits, zstd=self.zstd), count=count)

    def validate(self, payload: Positions, numel: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        require(self.handles(payload), tensor, "positions are not a bitmap")
        check_count(payload.count, numel, tensor)
        size = packed_size(numel, 1)
        check_blob(payload.blob, tensor=tensor, what="positions.bitmap",  # type: ignore[union-attr]
                   lo=size, hi=size, limits=limits)

    def decode(self, payload: Positions, numel: int, *, tensor: str, limits: DecodeLimits,
               mask: np.ndarray | None = None) -> np.ndarray:
        self.validate(payload, numel, tensor=tensor, limits=limits)
        raw = unframe(payload.blob, tensor=tensor,  # type: ignore[union-attr]
                      what="positions.bitmap")
        require(padding_is_zero(raw, numel), tensor, "bitmap padding bits are not zero")
        bits = np.unpackbits(raw, count=numel, bitorder="little")
        present = bits.view(np.bool_)  # 0/1 bytes; nonzero on bool is ~6x faster than on uint8
        found = int(np.count_nonzero(present))
        require(found == payload.count, tensor,
                f"bitmap has {found} set bits, count says {payload.count}")
        return np.flatnonzero(present).astype(np.int64, copy=False)


class DeltaVarintCodec(Framed, PositionCodec):
    """First index, then ``gap - 1``, as canonical unsigned LEB128 varints."""

    codec_id = "delta_varint"

    @classmethod
    def handles(cls, payload: object) -> bool:
        return isinstance(payload, DeltaVarintPositions)

    def encode(self, present: np.ndarray, *, tensor: str, mask_id: str = "") -> Positions:
        indices = np.flatnonzero(present)
        raw = encode_varints(indices_to_deltas(indices))
        return DeltaVarintPositions(blob=frame(raw, zstd=self.zstd), count=int(indices.size))

    def validate(self, payload: Positions, numel: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        require(self.handles(payload), tensor, "positions are not delta varints")
        count = check_count(payload.count, numel, tensor)
        check_blob(payload.blob, tensor=tensor, what="positions.delta_varint",  # type: ignore[union-attr]
                   lo=count, hi=MAX_VARINT_BYTES * count, limits=limits)

    def decode(self, payload: Positions, numel: int, *, tensor: str, limits: DecodeLimits,
               mask: np.ndarray | None = None) -> np.ndarray:
        self.validate(payload, numel, tensor=tensor, limits=limits)
        raw = unframe(payload.blob, tensor=tensor,  # type: ignore[union-attr]
                      what="positions.delta_varint")
        try:
            return deltas_to_indices(decode_varints(raw, payload.count), numel)
        except ValueError as exc:
            raise CodecError(tensor, f"positions.delta_varint: {exc}") from None


class ImpliedCodec(PositionCodec):
    """Positions are the set entries of a mask the receiver holds; zero bytes."""

    codec_id = "implied"

    @classmethod
    def handles(cls, payload: object) -> bool:
        return isinstance(payload, ImpliedPositions)

    def encode(self, present: np.ndarray, *, tensor: str, mask_id: str = "") -> Positions:
        require(isinstance(mask_id, str) and mask_id != "", tensor,
                "implied positions need a non-empty mask_id")
        return ImpliedPositions(mask_id=mask_id, count=int(np.count_nonzero(present)))

    def validate(self, payload: Positions, numel: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        require(self.handles(payload), tensor, "positions are not implied by a mask")
        require(isinstance(payload.mask_id, str) and payload.mask_id != "",  # type: ignore[union-attr]
                tensor, "implied positions have an empty mask_id")
        check_count(payload.count, numel, tensor)

    def decode(self, payload: Positions, numel: int, *, tensor: str, limits: DecodeLimits,
               mask: np.ndarray | None = None) -> np.ndarray:
        self.validate(payload, numel, tensor=tensor, limits=limits)
        require(mask is not None, tensor,
                f"positions are implied by mask {payload.mask_id!r}; pass that mask")  # type: ignore[union-attr]
        flat = np.asarray(mask)
        require(flat.dtype == np.bool_ and flat.size == numel, tensor,
                f"the implied mask must be bool with {numel} elements")
        indices = np.flatnonzero(flat)
        require(indices.size == payload.count, tensor,
                f"the mask keeps {indices.size} elements, positions.count says {payload.count}")
        return indices.astype(np.int64, copy=False)



def smallest_explicit(present: np.ndarray, *, zstd: bool, tensor: str
                      ) -> BitmapPositions | DeltaVarintPositions:
    """Encode ``present`` both as bitmap and as delta varints; keep the fewer bytes.

    Ties go to the bitmap (cheaper to decode).
    """
    best: BitmapPositions | DeltaVarintPositions | None = None
    for codec in (BitmapCodec(zstd=zstd), DeltaVarintCodec(zstd=zstd)):
        candidate = codec.encode(present, tensor=tensor)
        if best is None or len(candidate.blob.data) < len(best.blob.data):  # type: ignore[union-attr]
            best = candidate  # type: ignore[assignment]
    assert best is not None
    return best
