"""The codec interface: the contract every value and position codec follows.

A tensor on the wire is ``(positions, values)`` (see ``proto/fedprune/v1/tensor.proto``).
A **value codec** turns a 1-D float32 array of the present elements into a ``Values``
payload and back; a **position codec** turns a 1-D bool array (which elements are
present) into a ``Positions`` payload and back to ascending flat indices.

Contract (checked for every registered codec by ``tests/test_fedcompression_contract.py``):

* ``codec_id`` -- a class attribute, unique in the registry (``fedcompression.registry``).
* ``get_config()`` -- a JSON-able dict ``{"id": codec_id, **parameters}``;
  ``cls.from_config(config)`` rebuilds an equal codec. Two codecs are **equal iff they
  are of the same class and their configs are equal** (and then hash equal).
  Parameters only steer *encoding* (e.g. ``k``, ``zstd``): decoding is fully determined
  by the payload, so any instance of a class decodes what any other instance encoded.
* ``handles(payload)`` -- True iff this class decodes that payload; for every payload
  exactly one registered class answers True. This is how decoders dispatch without
  if/elif chains over format names.
* ``validate(payload, n, ...)`` -- checks every header field and declared size against
  ``n`` (count of values, or numel for positions) and the :class:`DecodeLimits`,
  *without* decompressing or allocating; ``decode`` calls it first. Both raise only
  :class:`~fedcompression.errors.CodecError`.
* Shape, element count and the mask of implied positions are explicit arguments: a
  payload never has to be trusted for them.
* ``encode`` never mutates its input; randomness (stochastic rounding, k-means seeding)
  comes from the ``rng`` argument, never from global state.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .limits import DecodeLimits
from .payload import Positions, Values


class Codec(abc.ABC):
    """Base of all codecs: identity, config round trip and config equality."""

    codec_id: ClassVar[str]

    def get_config(self) -> dict[str, Any]:
        """``{"id": codec_id, **parameters}``; enough to rebuild an equal codec."""
        return {"id": self.codec_id, **self._parameters()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Codec:
        """Rebuild a codec from :meth:`get_config` output; ``ValueError`` on a bad config."""
        params = dict(config)
        codec_id = params.pop("id", None)
        if codec_id != cls.codec_id:
            raise ValueError(f"config id {codec_id!r} is not {cls.codec_id!r}")
        try:
            return cls(**params)
        except TypeError as exc:
            raise ValueError(f"bad config for codec {cls.codec_id!r}: {exc}") from None

    @classmethod
    @abc.abstractmethod
    def handles(cls, payload: object) -> bool:
        """True iff ``payload`` is in this codec's wire format."""

    def _parameters(self) -> dict[str, Any]:
        """Encoding parameters (constructor keyword arguments); none by default."""
        return {}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._parameters().items())
        return f"{type(self).__name__}({args})"


class ValueCodec(Codec):
    """Encodes the present values of a tensor (1-D float32) as a ``Values`` payload."""

    @classmethod
    def from_options(cls, *, clusters: int, zstd: bool) -> ValueCodec:
        """Build from :class:`~fedcompression.TensorEncoding` options it understands."""
        return cls(zstd=zstd)  # type: ignore[call-arg]

    @abc.abstractmethod
    def encode(self, values: np.ndarray, *, rng: np.random.Generator, tensor: str) -> Values:
        """Encode finite float32 ``values`` (1-D). Never mutates them."""

    @abc.abstractmethod
    def validate(self, payload: Values, count: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        """Check header fields and declared sizes for ``count`` values; no decompression."""

    @abc.abstractmethod
    def decode(self, payload: Values, count: int, *, tensor: str,
               limits: DecodeLimits) -> np.ndarray:
        """Validate, then return ``count`` finite float32 values (1-D, writable)."""

    @abc.abstractmethod
    def symbols(self, payload: Values, count: int, *, tensor: str,
                limits: DecodeLimits) -> tuple[np.ndarray, int]:
        """The transmitted discrete symbols and the bits of side information sent as-is
        (codebook, scale); used for the entropy lower bound (``fedcompression.accounting``)."""


class PositionCodec(Codec):
    """Encodes which elements are present (1-D bool) as a ``Positions`` payload."""

    @abc.abstractmethod
    def encode(self, present: np.ndarray, *, tensor: str, mask_id: str = "") -> Positions:
        """Encode the 1-D bool array ``present`` (flat C order)."""

    @abc.abstractmethod
    def validate(self, payload: Positions, numel: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        """Check header fields and declared sizes for a tensor of ``numel`` elements."""

    @abc.abstractmethod
    def decode(self, payload: Positions, numel: int, *, tensor: str, limits: DecodeLimits,
               mask: np.ndarray | None = None) -> np.ndarray:
        """Validate, then return the strictly increasing int64 flat indices present.

        ``mask`` (flat bool) is the receiver's mask for implied positions; other
        position codecs ignore it.
        """


class Framed:
    """Mixin for codecs whose blobs may be zstd-framed: the ``zstd`` encoding option.

    With ``zstd=True`` each blob is compressed and the frame kept only when smaller
    (``fedcompression.framing.frame``). Decoding accepts either framing regardless.
    """

    def __init__(self, *, zstd: bool = False) -> None:
        if not isinstance(zstd, bool):
            raise ValueError(f"zstd must be a bool, got {zstd!r}")
        self.zstd = zstd

    def _parameters(self) -> dict[str, Any]:
        return {"zstd": self.zstd}
