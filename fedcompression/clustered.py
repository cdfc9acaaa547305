"""Clustered value codec ``clustered`` (``ClusteredValues`` on the wire).

Every value is replaced by one of ``k <= 256`` float32 centroids (1-D k-means,
:func:`fedcompression.kmeans.kmeans_1d`); the wire carries the codebook and each value's
centroid index bit-packed at ``index_bits = ceil(log2 k)`` bits (0 bits when ``k == 1``).
Values that already take at most ``k`` distinct values round-trip exactly. Exact zeros
(pruned weights of a densely sent tensor) stay exactly zero: when present and ``k >= 2``,
0.0 is a reserved centroid, the nonzero values are clustered into ``k - 1`` centroids,
and every value is labelled with its nearest centroid.

Decoder checks: codebook size a multiple of 4 in [4, 1024] (1..256 centroids), all
finite; ``index_bits`` exactly ``ceil(log2 k)``; exact indices size, zero padding bits,
every index ``< k``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import is_int, require
from .bits import pack_bits, packed_size, padding_is_zero, unpack_bits
from .codec import Framed, ValueCodec
from .framing import check_blob, frame, unframe
from .kmeans import assign, kmeans_1d
from .limits import DecodeLimits
from .payload import ClusteredValues, Values

MAX_CLUSTERS = 256


def index_bits_for(k: int) -> int:
    """``ceil(log2 k)`` for ``k >= 1``: 0 for one centroid, 4 for 16, 8 for 256."""
    return (k - 1).bit_length()


class ClusteredCodec(Framed, ValueCodec):
    """Codebook of at most ``k`` float32 centroids + bit-packed indices."""

    codec_id = "clustered"

    def __init__(self, *, k: int = 16, zstd: bool = False) -> None:
        if not is_int(k) or not 1 <= k <= MAX_CLUSTERS:
            raise ValueError(f"k must be an int in 1..{MAX_CLUSTERS}, got {k!r}")
        super().__init__(zstd=zstd)
        self.k = int(k)

    @classmethod
    def from_options(cls, *, clusters: int, zstd: bool) -> ClusteredCodec:
        return cls(k=clusters, zstd=zstd)

    def _parameters(self) -> dict[str, Any]:
        return {"k": self.k, **super()._parameters()}

    @classmethod
    def handles(cls, payload: object) -> bool:
        return isinstance(payload, ClusteredValues)

    def encode(self, values: np.ndarray, *, rng: np.random.Generator, tensor: str) -> Values:
        codebook, labels = _cluster(np.asarray(values, dtype=np.float32), self.k,
                                    seed=int(rng.integers(0, 1 << 63)))
        bits = index_bits_for(codebook.size)
        indices = pack_bits(labels, bits) if bits else b""
        return ClusteredValues(
            codebook=frame(codebook.astype("<f4").tobytes(), zstd=self.zstd),
            index_bits=bits,
            indices=frame(indices, zstd=self.zstd),
        )

    def validate(self, payload: Values, count: int, *, tensor: str,
                 limits: DecodeLimits) -> None:
        require(self.handles(payload), tensor, "values are not clustered values")
        p: ClusteredValues = payload  # type: ignore[assignment]
        cb = check_blob(p.codebook, tensor=tensor, what="codebook", lo=4,
                        hi=4 * MAX_CLUSTERS, limits=limits)
        require(cb.raw_size % 4 == 0, tensor, f"codebook raw_size {cb.raw_size} is not 4*k")
        bits = index_bits_for(cb.raw_size // 4)
        require(is_int(p.index_bits) and p.index_bits == bits, tensor,
                f"index_bits {p.index_bits!r} != ceil(log2 k) = {bits}")
        size = packed_size(count, bits)
        check_blob(p.indices, tensor=tensor, what="indices", lo=size, hi=size, limits=limits)

    def _parts(self, payload: Values, count: int, tensor: str, limits: DecodeLimits
               ) -> tuple[np.ndarray, np.ndarray]:
        """Validated ``(codebook float32, indices uint8)``."""
        self.validate(payload, count, tensor=tensor, limits=limits)
        p: ClusteredValues = payload  # type: ignore[assignment]
        codebook = unframe(p.codebook, tensor=tensor, what="codebook").view("<f4")
        require(bool(np.isfinite(codebook).all()), tensor, "codebook is not all finite")
        raw = unframe(p.indices, tensor=tensor, what="indices")
        if p.index_bits == 0:
            return codebook.astype(np.float32), np.zeros(count, dtype=np.uint8)
        require(padding_is_zero(raw, count * p.index_bits), tensor, "indices padding is not zero")
        indices = unpack_bits(raw, p.index_bits, count)
        if codebook.size < 1 << p.index_bits and indices.size:
            require(int(indices.max()) < codebook.size, tensor,
                    f"an index is >= codebook size {codebook.size}")
        return codebook.astype(np.float32), indices

    def decode(self, payload: Values, count: int, *, tensor: str,
               limits: DecodeLimits) -> np.ndarray:
        codebook, indices = self._parts(payload, count, tensor, limits)
        return codebook[indices]

    def symbols(self, payload: Values, count: int, *, tensor: str,
                limits: DecodeLimits) -> tuple[np.ndarray, int]:
        codebook, indices = self._parts(payload, count, tensor, limits)
        return indices, 32 * codebook.size


def _cluster(values: np.ndarray, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means with 0.0 as a reserved centroid when exact zeros are present (k >= 2)."""
    zeros = values == 0
    if k < 2 or not zeros.any() or zeros.all():
        return kmeans_1d(values, k, seed=seed)
    nonzero_codebook, _ = kmeans_1d(values[~zeros], k - 1, seed=seed)
    codebook = np.unique(np.append(nonzero_codebook, np.float32(0.0)))
    labels = assign(values, codebook)  # small nonzero values may snap to 0.0: it is nearest
    labels[zeros] = int(np.searchsorted(codebook, 0.0))
    return codebook, labels
