"""``TensorEncoding``: how one tensor should be put on the wire.

A tensor is ``(positions, values)``. ``values`` names a registered value codec
(``fp32``, ``fp16``, ``bf16``, ``int8``, ``int4``, ``clustered``); ``clusters`` is the
``k`` of ``clustered`` (ignored otherwise). ``positions`` is one of

* ``"dense"`` -- no positions; values cover every element;
* ``"explicit"`` -- positions are the nonzero elements of the array (or the given mask),
  sent as a bitmap or delta varints, whichever is smaller;
* ``"implied"`` -- positions are the given mask, which the receiver holds under
  ``mask_id``; no index bytes;
* ``"auto"`` -- ``implied`` when a ``mask_id`` is given, else the smaller of ``dense``
  and ``explicit``.

``zstd`` frames every blob with zstd when that makes it smaller.

>>> TensorEncoding(values="clustered", clusters=16, positions="implied", zstd=True)
TensorEncoding(values='clustered', clusters=16, positions='implied', zstd=True)
>>> TensorEncoding(positions="sparse")
Traceback (most recent call last):
...
ValueError: TensorEncoding.positions must be one of ('dense', 'explicit', 'implied', 'auto'), got 'sparse'
"""

from __future__ import annotations

from dataclasses import dataclass

from .clustered import MAX_CLUSTERS
from .errors import UnknownCodecError
from .registry import value_codec

POSITION_MODES = ("dense", "explicit", "implied", "auto")


@dataclass(frozen=True, kw_only=True)
class TensorEncoding:
    """Wire encoding options of one tensor; validated at construction."""

    values: str = "fp32"
    clusters: int = 16
    positions: str = "dense"
    zstd: bool = False

    def __post_init__(self) -> None:
        try:
            value_codec(self.values)
        except UnknownCodecError:
            raise ValueError(
                f"TensorEncoding.values must name a registered value codec, got {self.values!r}"
            ) from None
        if type(self.clusters) is not int or not 1 <= self.clusters <= MAX_CLUSTERS:
            raise ValueError(
                f"TensorEncoding.clusters must be an int in 1..{MAX_CLUSTERS}, "
                f"got {self.clusters!r}"
            )
        if self.positions not in POSITION_MODES:
            raise ValueError(
                f"TensorEncoding.positions must be one of {POSITION_MODES}, "
                f"got {self.positions!r}"
            )
        if not isinstance(self.zstd, bool):
            raise ValueError(f"TensorEncoding.zstd must be a bool, got {self.zstd!r}")
