"""Which coordinates secure aggregation carries: the kept ones of the public pruning mask.

The mask is the coordinator's and every client holds it, so both sides agree on the
vector without sending any index: tensor by tensor in model order, row-major within a
tensor, only positions where the mask is true (every position of an unmasked tensor).
Bytes and mask-expansion work therefore scale with the model's density.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class KeptCoordinates:
    def __init__(self, shapes: Mapping[str, tuple[int, ...]],
                 masks: Mapping[str, np.ndarray] | None = None) -> None:
        self.shapes = {n: tuple(s) for n, s in shapes.items()}
        masks = masks or {}
        unknown = set(masks) - set(self.shapes)
        if unknown:
            raise ValueError(f"masks for unknown tensors {sorted(unknown)}")
        self.masks = {n: np.asarray(masks[n], dtype=bool).reshape(s) if n in masks else None
                      for n, s in self.shapes.items()}
        self.count = sum(int(m.sum()) if m is not None else int(np.prod(s, dtype=np.int64))
                         for s, m in zip(self.shapes.values(), self.masks.values(), strict=True))

    def gather(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The kept coordinates of ``arrays`` as one float64 vector."""
        parts = []
        for name, shape in self.shapes.items():
            arr = np.asarray(arrays[name], dtype=np.float64).reshape(shape)
            mask = self.masks[name]
            parts.append(arr[mask] if mask is not None else arr.ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    def scatter(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """Full-shape arrays holding ``vector`` at the kept positions and 0 elsewhere."""
        if vector.size != self.count:
            raise ValueError(f"vector has {vector.size} values, {self.count} are kept")
        out, at = {}, 0
        for name, shape in self.shapes.items():
            mask = self.masks[name]
            full = np.zeros(shape, dtype=vector.dtype)
            size = int(mask.sum()) if mask is not None else full.size
            if mask is not None:
                full[mask] = vector[at:at + size]
            else:
                full.reshape(-1)[:] = vector[at:at + size]
            out[name], at = full, at + size
        return out
