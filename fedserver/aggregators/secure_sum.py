"""``SecureSum``: the sum of masked ring vectors, unmasked once the protocol allows it.

Secure aggregation as one more kind of sum: it replaces ``Sum()`` inside a mean
(``UnweightedMean(value_sum=SecureSum(...))``) or under distributed DP
(``DistributedDPSum(inner=SecureSum(...))``), and the wrappers above it never notice.
Each contribution is one client's masked input ``y_u`` (ring elements in ``[0, M)``
carried as exact float64 values at the kept positions, 0 elsewhere; M <= 2^52 so float64
holds them exactly); the accumulator folds them mod M as they arrive, so memory stays
O(model). A single masked input is uniformly random over the ring, so nothing here is
about one client. At ``finalize`` the :class:`Unmasker` (the secure-aggregation protocol,
:mod:`fedserver.secure_aggregation`) hands over the round's total mask, reconstructed from
the survivors' shares; ``(sum - mask) mod M`` is the exact integer sum of the encoded
updates, decoded to floats in one scaling.

Measurements: ``count``, ``ring_bits``, and ``sum_sha256``, the SHA-256 of the unmasked
ring sum (uint64 little-endian, tensor by tensor): the aggregate the coordinator learns
anyway, so tests can check the secure sum bit for bit against the plain one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from fedcore.secagg import ring
from fedcore.secagg.fixed_point import FixedPoint
from fedserver.aggregators.base import (
    Contribution,
    Output,
    RejectedContribution,
    RoundSpec,
    Shapes,
    State,
    checked_values,
    same_kind,
)

MAX_EXACT_RING_BITS = 52


class Unmasker(Protocol):
    def take_correction(self, round: int) -> Mapping[str, np.ndarray]:
        """The round's total mask as ring arrays of the tensors' shapes (once)."""
        ...


class SecureSumAccumulator:
    def __init__(self, shapes: Shapes, *, ring_bits: int, round: int) -> None:
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.ring_bits, self.round = ring_bits, round
        self.totals = {n: np.zeros(s, dtype=np.uint64) for n, s in self.shapes.items()}
        self.count = 0

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self.shapes)
        limit = float(1 << self.ring_bits)
        for name, arr in values.items():
            if np.any(arr < 0) or np.any(arr >= limit) or np.any(arr != np.floor(arr)):
                raise RejectedContribution(f"tensor {name!r}: masked values must be integers "
                                           f"in [0, 2^{self.ring_bits})")
        for name, arr in values.items():
            self.totals[name] = ring.add(self.totals[name], arr.astype(np.uint64),
                                         self.ring_bits)
        self.count += 1

    def merge(self, other: SecureSumAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if (other.shapes, other.ring_bits, other.round) != (self.shapes, self.ring_bits,
                                                             self.round):
            raise TypeError("cannot merge secure sums of other shapes, rings or rounds")
        for name, arr in other.totals.items():
            self.totals[name] = ring.add(self.totals[name], arr, self.ring_bits)
        self.count += other.count


class SecureSum:
    max_buffered = None

    def __init__(self, *, encoding: FixedPoint, unmasker: Unmasker) -> None:
        if encoding.ring_bits > MAX_EXACT_RING_BITS:
            raise ValueError(f"ring_bits must be <= {MAX_EXACT_RING_BITS} (exact in float64), "
                             f"got {encoding.ring_bits}")
        self.encoding, self.unmasker = encoding, unmasker

    def initialize(self, shapes: Shapes) -> State:
        return {}

    def begin(self, state: State, spec: RoundSpec) -> SecureSumAccumulator:
        return SecureSumAccumulator(spec.shapes, ring_bits=self.encoding.ring_bits,
                                    round=spec.round)

    def finalize(self, state: State, acc: SecureSumAccumulator) -> Output:  # type: ignore[override]
        if acc.count == 0:
            return Output(state, None, {"count": 0, "ring_bits": self.encoding.ring_bits})
        mask = self.unmasker.take_correction(acc.round)
        bits = self.encoding.ring_bits
        unmasked = {n: ring.sub(t, np.asarray(mask[n], dtype=np.uint64), bits)
                    for n, t in acc.totals.items()}
        digest = hashlib.sha256()
        for arr in unmasked.values():
            digest.update(np.ascontiguousarray(arr, dtype="<u8").tobytes())
        result = {n: self.encoding.decode_sum(u) for n, u in unmasked.items()}
        return Output(state, result, {"count": acc.count, "ring_bits": bits,
                                      "sum_sha256": digest.hexdigest()})

    def get_config(self) -> dict[str, Any]:
        e = self.encoding
        return {"name": "secure_sum", "value_bits": e.value_bits, "ring_bits": e.ring_bits,
                "clip_range": e.clip_range}
