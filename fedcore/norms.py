"""The L2 norm of an update over all its tensors, and clipping to a bound.

Shared by the client (DP clipping before encoding) and the server (norm bounds and DP
clipping of decoded updates), so both bound exactly the same quantity. The norm is safe
against float64 overflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def global_l2_norm(values: Mapping[str, np.ndarray]) -> float:
    norm = math.sqrt(sum(float(np.vdot(v, v)) for v in values.values()))
    if math.isinf(norm):  # the squares overflowed: rescale by the largest entry first
        peak = max(float(np.max(np.abs(v))) for v in values.values() if v.size)
        norm = peak * math.sqrt(sum(float(np.vdot(v / peak, v / peak)) for v in values.values()))
    return norm


def clip_scale(norm: float, bound: float) -> float:
    """The factor that brings ``norm`` down to ``bound`` (1 for an all-zero update)."""
    return min(1.0, bound / norm) if norm > 0 else 1.0


def clip_to_norm(values: Mapping[str, np.ndarray], bound: float
                 ) -> tuple[dict[str, np.ndarray], bool]:
    """``values`` scaled to L2 norm at most ``bound``, and whether they already fitted."""
    scale = clip_scale(global_l2_norm(values), bound)
    return {n: (v * scale).astype(v.dtype) for n, v in values.items()}, scale == 1.0
