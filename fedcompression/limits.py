"""Decoder resource limits.

Every decoder checks the sizes a payload *declares* (shape, counts, ``raw_size`` of each
blob) against a :class:`DecodeLimits` before it allocates or decompresses anything, so a
hostile payload can cost at most these many elements / bytes, whatever its headers say.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Hard ceiling on ``max_numel``: keeps every index computation far from int64 overflow.
MAX_NUMEL_CEILING = 1 << 48


@dataclass(frozen=True, kw_only=True)
class DecodeLimits:
    """Caps a decoder enforces before allocating.

    ``max_numel`` bounds the element count of one decoded tensor (and every dimension);
    ``max_raw_bytes`` bounds the unframed size of any one blob, which is also the zstd
    output cap.

    >>> DecodeLimits(max_numel=0)
    Traceback (most recent call last):
    ...
    ValueError: DecodeLimits.max_numel must be an int in [1, 2**48], got 0
    """

    max_numel: int = 1 << 28
    max_raw_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        for name, value in (("max_numel", self.max_numel), ("max_raw_bytes", self.max_raw_bytes)):
            if type(value) is not int or not 1 <= value <= MAX_NUMEL_CEILING:
                raise ValueError(
                    f"DecodeLimits.{name} must be an int in [1, 2**48], got {value!r}"
                )


#: The limits every decoder uses when the caller passes none.
DEFAULT_LIMITS = DecodeLimits()
