"""The explicit codec registry (numcodecs style).

``register(cls)`` adds a codec class under its ``codec_id`` and refuses to silently
replace a different class already registered under that id. Lookups of an unknown id
raise :class:`~fedcompression.errors.UnknownCodecError` (a ``ValueError`` subclass).
Decoders dispatch on payloads through ``codec_for_payload``, which asks each registered
class whether it ``handles`` the payload -- no format-name if/elif chains.

The built-in codecs are registered once, at the bottom of this module.

>>> sorted(registered_ids())  # doctest: +NORMALIZE_WHITESPACE
['bf16', 'bitmap', 'clustered', 'delta_varint', 'fp16', 'fp32', 'implied', 'int4', 'int8']
>>> get_codec({"id": "clustered", "k": 4, "zstd": True})
ClusteredCodec(k=4, zstd=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .clustered import ClusteredCodec
from .codec import Codec, PositionCodec, ValueCodec
from .errors import CodecError, UnknownCodecError
from .float_codecs import Bf16Codec, Fp16Codec, Fp32Codec
from .position_codecs import BitmapCodec, DeltaVarintCodec, ImpliedCodec
from .quant_codecs import Int4Codec, Int8Codec

_REGISTRY: dict[str, type[Codec]] = {}
C = TypeVar("C", bound=type[Codec])


def register(cls: C) -> C:
    """Register ``cls`` under ``cls.codec_id``; re-registering the same class is a no-op.

    Raises ``ValueError`` if another class already holds that id, or if ``cls`` is not a
    concrete :class:`Codec` with a string ``codec_id``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        raise ValueError(f"{cls!r} is not a Codec subclass")
    codec_id = getattr(cls, "codec_id", None)
    if not isinstance(codec_id, str) or not codec_id:
        raise ValueError(f"{cls.__name__} has no codec_id")
    existing = _REGISTRY.get(codec_id)
    if existing is not None and existing is not cls:
        raise ValueError(f"codec id {codec_id!r} is already registered to {existing.__name__}")
    _REGISTRY[codec_id] = cls
    return cls


def registered_ids() -> list[str]:
    """Ids of all registered codecs, in registration order."""
    return list(_REGISTRY)


def codec_class(codec_id: str) -> type[Codec]:
    """The class registered under ``codec_id``; ``UnknownCodecError`` if none."""
    try:
        return _REGISTRY[codec_id]
    except (KeyError, TypeError):
        raise UnknownCodecError("", f"unknown codec id {codec_id!r}") from None


def get_codec(config: Mapping[str, Any]) -> Codec:
    """Build a codec from its config dict (``{"id": ..., **parameters}``)."""
    if not isinstance(config, Mapping) or "id" not in config:
        raise ValueError(f"a codec config is a mapping with an 'id', got {config!r}")
    return codec_class(config["id"]).from_config(config)


def value_codec(codec_id: str) -> type[ValueCodec]:
    """The value codec class for ``codec_id`` (``UnknownCodecError`` otherwise)."""
    cls = codec_class(codec_id)
    if not issubclass(cls, ValueCodec):
        raise UnknownCodecError("", f"{codec_id!r} is not a value codec")
    return cls


def codec_for_payload(payload: object, *, tensor: str) -> Codec:
    """A decoder for ``payload``: the one registered class that ``handles`` it."""
    for cls in _REGISTRY.values():
        if cls.handles(payload):
            return cls()
    raise CodecError(tensor, f"no registered codec decodes {_describe(payload)}")


def value_decoder(payload: object, *, tensor: str) -> ValueCodec:
    """:func:`codec_for_payload`, which must be a value codec."""
    codec = codec_for_payload(payload, tensor=tensor)
    if not isinstance(codec, ValueCodec):
        raise CodecError(tensor, f"values hold a {type(payload).__name__}")
    return codec


def position_decoder(payload: object, *, tensor: str) -> PositionCodec:
    """:func:`codec_for_payload`, which must be a position codec."""
    codec = codec_for_payload(payload, tensor=tensor)
    if not isinstance(codec, PositionCodec):
        raise CodecError(tensor, f"positions hold a {type(payload).__name__}")
    return codec


def _describe(payload: object) -> str:
    fields = {k: v for k, v in getattr(payload, "__dict__", {}).items()
              if k in ("format", "bits")}
    return f"{type(payload).__name__}{fields or ''}"


for _cls in (Fp32Codec, Fp16Codec, Bf16Codec, Int8Codec, Int4Codec, ClusteredCodec,
             BitmapCodec, DeltaVarintCodec, ImpliedCodec):
    register(_cls)
del _cls
