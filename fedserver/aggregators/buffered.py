"""The buffer behind the robust aggregators: one flat float32 row per contribution.

Median, trimmed mean and Krum need every contribution at once (a coordinate-wise order
statistic or pairwise distances cannot be folded into a running sum), so they keep the
round's updates in a :class:`BufferAccumulator` and combine them at ``finalize``. The buffer
is bounded: it holds at most ``max_buffered`` rows (the cohort bound a preset derives from
``round.clients_per_round * (1 + over_selection)``), refusing one more as a rejected
contribution, so its memory is at most ``max_buffered * model_size * 4`` bytes, which
:mod:`fedserver.presets` checks against ``aggregation.max_buffer_bytes`` at config time.

Rows are the contribution's tensors flattened in the order of the round's shapes. Weights
are ignored: a robust rule gives every client one vote, so a client claiming 2^40 examples
counts once. Under pruning the rows are the full vectors, which are exactly zero at pruned
positions (masked training guarantees it); a coordinate-wise rule over zeros returns zero
there, so the model stays inside its mask, and zeros add nothing to Krum's distances.

Subclasses of :class:`BufferedAggregator` implement only ``combine(rows, client_ids)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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

BYTES_PER_VALUE = 4  # rows are float32


def buffer_bytes(*, rows: int, model_size: int) -> int:
    """The memory a full buffer of ``rows`` updates of ``model_size`` values holds."""
    return rows * model_size * BYTES_PER_VALUE


class BufferAccumulator:
    def __init__(self, shapes: Shapes, *, max_buffered: int, config: dict[str, Any]) -> None:
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        self.max_buffered, self.config = max_buffered, config
        self.rows: list[np.ndarray] = []
        self.client_ids: list[str] = []

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self.shapes)  # validate all, then fold
        if self.count >= self.max_buffered:
            raise RejectedContribution(f"the round already buffers max_buffered = "
                                       f"{self.max_buffered} updates (the cohort bound)")
        self.rows.append(np.concatenate([values[n].ravel() for n in self.shapes])
                         .astype(np.float32))
        self.client_ids.append(contribution.client_id)

    def merge(self, other: BufferAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if other.config != self.config or other.shapes != self.shapes:
            raise TypeError(f"cannot merge a buffer of {other.config} over {other.shapes} into "
                            f"one of {self.config} over {self.shapes}")
        if self.count + other.count > self.max_buffered:
            raise ValueError(f"merging would buffer {self.count + other.count} updates, more "
                             f"than max_buffered = {self.max_buffered}")
        self.rows += other.rows
        self.client_ids += other.client_ids

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out, start = {}, 0
        for name, shape in self.shapes.items():
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[start:start + size].reshape(shape).astype(np.float32)
            start += size
        return out


class BufferedAggregator:
    """Shared plumbing of the robust aggregators (stateless: ``initialize`` returns {})."""

    name = "buffered"

    def __init__(self, *, max_buffered: int) -> None:
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int) \
                or max_buffered < 1:
            raise ValueError(f"max_buffered must be an int >= 1, got {max_buffered!r}")
        self.max_buffered: int | None = max_buffered

    def params(self) -> dict[str, Any]:
        """The numbers that change the rule (not the buffer bound: same function)."""
        return {}

    def combine(self, rows: np.ndarray, client_ids: list[str]
                ) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def initialize(self, shapes: Shapes) -> State:
        return {}

    def begin(self, state: State, spec: RoundSpec) -> BufferAccumulator:
        assert self.max_buffered is not None
        return BufferAccumulator(spec.shapes, max_buffered=self.max_buffered,
                                 config=self.get_config())

    def finalize(self, state: State, acc: BufferAccumulator) -> Output:  # type: ignore[override]
        measurements: dict[str, Any] = {"count": acc.count}
        if acc.count == 0:
            return Output(state, None, measurements)
        flat, measured = self.combine(np.stack(acc.rows).astype(np.float64), acc.client_ids)
        return Output(state, acc.unflatten(flat), {**measurements, **measured})

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}
