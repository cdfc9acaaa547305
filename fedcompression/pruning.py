"""Pruning scores and masks (numpy only).

Granularity decides what one pruning decision removes:

* ``"unstructured"`` -- single weights, scored by ``|w|``;
* ``"rows"`` -- rows of a 2-D linear weight in torch layout ``[out, in]`` (one output
  neuron each), scored by the row's L2 norm;
* ``"columns"`` -- columns of a 2-D weight (one input feature each), column L2 norm;
* ``"half-rows"`` / ``"half-columns"`` -- the paper's half patterns: each row of a 2-D
  weight split into its first ``ceil(in / 2)`` and its remaining columns (group shape
  ``(out, 2)``), or each column split at row ``ceil(out / 2)`` (group shape ``(2, in)``);
  L2 norm of each half. A half row removes half of a neuron's inputs, not the neuron; a
  neuron is gone only when both of its halves are pruned;
* ``"channels"`` -- output channels (axis 0) of a conv weight ``[out, in, *kernel]`` (or
  any >= 2-D weight), L2 norm over the other axes.

Group scores have the *group shape* (``shape`` itself, ``(out,)``, ``(in,)``,
``(out, 2)``, ``(2, in)`` or ``(out,)``). Masks are always bool arrays of the full
tensor shape (group decisions broadcast to their elements); ``True`` = kept.

Ties are broken deterministically: among equal scores the lower flat group index (and,
for global allocation, the earlier tensor in the dict) is kept first.

Global allocation ranks scores across tensors after dividing each tensor's group scores
by their **mean** (ours): this removes the per-layer scale (layers with larger weights do
not keep everything) without depending on the number of groups, as dividing by the L2
norm would (an L2-normalised layer with many groups would look uniformly unimportant and
be pruned away first). The budget is counted in elements, so sparsity is a fraction of
parameters for structured granularities too, and each tensor keeps its best group.

>>> w = np.array([[3.0, 0.0], [0.1, 0.2]])
>>> mask_from_scores(group_scores(w, "rows"), 0.5, "rows", w.shape).tolist()
[[True, True], [False, False]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

GRANULARITIES = ("unstructured", "rows", "columns", "half-rows", "half-columns", "channels")
_HALVES = {"half-rows": 1, "half-columns": 0}  # the axis that is cut in two


def magnitude_scores(array: np.ndarray) -> np.ndarray:
    """``|w|`` as float64 (the unstructured score)."""
    return np.abs(np.asarray(array, dtype=np.float64))


def group_shape(shape: tuple[int, ...], granularity: str) -> tuple[int, ...]:
    """Shape of the group scores / group mask of a tensor of ``shape``."""
    _check_granularity(granularity, shape)
    if granularity == "unstructured":
        return tuple(shape)
    if granularity in _HALVES:
        return (shape[0], 2) if granularity == "half-rows" else (2, shape[1])
    return (shape[1],) if granularity == "columns" else (shape[0],)


def _half_index(shape: tuple[int, ...], granularity: str) -> np.ndarray:
    """0 or 1 per position along the cut axis: which half it belongs to."""
    n = shape[_HALVES[granularity]]
    return (np.arange(n) >= (n + 1) // 2).astype(np.intp)


def group_scores(array: np.ndarray, granularity: str) -> np.ndarray:
    """Scores of each group: ``|w|`` (unstructured) or the group's L2 norm (float64)."""
    w = np.asarray(array, dtype=np.float64)
    _check_granularity(granularity, w.shape)
    if granularity == "unstructured":
        return np.abs(w)
    if granularity in _HALVES:
        axis, half = _HALVES[granularity], _half_index(w.shape, granularity)
        sums = [np.sum(np.compress(half == h, w * w, axis=axis), axis=axis) for h in (0, 1)]
        return np.sqrt(np.stack(sums, axis=axis))
    axes = (0,) if granularity == "columns" else tuple(range(1, w.ndim))
    return np.sqrt(np.sum(w * w, axis=axes))


def expand_group_mask(group_mask: np.ndarray, shape: tuple[int, ...], granularity: str
                      ) -> np.ndarray:
    """Broadcast a group mask to a bool element mask of ``shape``."""
    gm = np.asarray(group_mask, dtype=bool).reshape(group_shape(shape, granularity))
    if granularity in _HALVES:
        return np.ascontiguousarray(np.take(gm, _half_index(shape, granularity),
                                            axis=_HALVES[granularity]))
    if granularity == "columns":
        gm = gm[None, :]
    elif granularity != "unstructured":
        gm = gm.reshape((-1,) + (1,) * (len(shape) - 1))
    return np.ascontiguousarray(np.broadcast_to(gm, shape))


def structured_granularity(mask: np.ndarray) -> str:
    """The first structured granularity whose whole groups make up ``mask``, else
    ``"unstructured"``: ``"channels"`` for a >2-D mask, then ``"rows"``, ``"columns"``,
    ``"half-rows"``, ``"half-columns"`` for a 2-D one (an all-kept mask is ``"rows"``).

    >>> structured_granularity(np.array([[True, False], [True, False]]))
    'columns'
    """
    m = np.asarray(mask, dtype=bool)
    candidates = ("channels",) if m.ndim > 2 else (
        ("rows", "columns", "half-rows", "half-columns") if m.ndim == 2 else ())
    for granularity in candidates:
        groups = group_scores(m.astype(np.float64), granularity) > 0
        if np.array_equal(expand_group_mask(groups, m.shape, granularity), m):
            return granularity
    return "unstructured"


def mask_from_scores(scores: np.ndarray, sparsity: float, granularity: str,
                     shape: tuple[int, ...]) -> np.ndarray:
    """Keep the top ``1 - sparsity`` fraction of groups (rounded to the nearest group).

    Returns a bool mask of ``shape``. Ties keep the lower flat group index.
    """
    s = _checked_scores("scores", scores, tuple(shape), granularity)
    _check_sparsity(sparsity)
    n_keep = s.size - math.floor(sparsity * s.size + 0.5)
    keep = np.zeros(s.size, dtype=bool)
    keep[np.argsort(-s.ravel(), kind="stable")[:n_keep]] = True
    return expand_group_mask(keep, tuple(shape), granularity)


def allocate_masks(scores: Mapping[str, np.ndarray], sparsity: float, *,
                   allocation: str = "uniform", granularity: str = "unstructured",
                   shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Masks for several tensors at overall ``sparsity``.

    ``"uniform"`` prunes every tensor to ``sparsity``; ``"global"`` ranks mean-normalised
    group scores across tensors so per-layer sparsity emerges (see module docstring).
    ``scores[name]`` are group scores (:func:`group_scores`) of the tensor ``shapes[name]``.
    """
    if set(scores) != set(shapes):
        raise ValueError("scores and shapes must have the same tensor names")
    _check_sparsity(sparsity)
    if allocation not in _ALLOCATIONS:
        raise ValueError(f"allocation must be one of {tuple(_ALLOCATIONS)}, got {allocation!r}")
    checked = {n: _checked_scores(n, scores[n], tuple(shapes[n]), granularity) for n in scores}
    return _ALLOCATIONS[allocation](checked, sparsity, granularity,
                                    {n: tuple(shapes[n]) for n in scores})


def _uniform(scores: dict[str, np.ndarray], sparsity: float, granularity: str,
             shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {n: mask_from_scores(s, sparsity, granularity, shapes[n]) for n, s in scores.items()}


def _global(scores: dict[str, np.ndarray], sparsity: float, granularity: str,
            shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    names = list(scores)
    flat = [s.ravel() for s in scores.values()]
    norm = np.concatenate([s / s.mean() if s.size and s.mean() > 0 else np.zeros_like(s)
                           for s in flat])
    sizes = np.concatenate([np.full(s.size, math.prod(shapes[n]) // max(s.size, 1))
                            for n, s in zip(names, flat)])
    offsets = np.cumsum([0] + [s.size for s in flat])
    protected = np.zeros(norm.size, dtype=bool)
    for i, s in enumerate(flat):
        if s.size:
            protected[offsets[i] + int(np.argmax(s))] = True  # each tensor keeps its best group
    candidates = np.flatnonzero(~protected)
    by_rank = candidates[np.argsort(-norm[candidates], kind="stable")][::-1]  # worst first
    budget = math.floor(sparsity * int(sizes.sum()) + 0.5)
    n_prune = int(np.searchsorted(np.cumsum(sizes[by_rank]), budget, side="right"))
    keep = np.ones(norm.size, dtype=bool)
    keep[by_rank[:n_prune]] = False
    return {n: expand_group_mask(keep[offsets[i]:offsets[i + 1]], shapes[n], granularity)
            for i, n in enumerate(names)}


_ALLOCATIONS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "uniform": _uniform, "global": _global,
}


def _check_granularity(granularity: str, shape: tuple[int, ...]) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity in ("rows", "columns", *_HALVES) and len(shape) != 2:
        raise ValueError(f"{granularity} pruning needs a 2-D weight, got shape {shape}")
    if granularity == "channels" and len(shape) < 2:
        raise ValueError(f"channel pruning needs a >= 2-D weight, got shape {shape}")


def _check_sparsity(sparsity: float) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) \
            or not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1], got {sparsity!r}")


def _checked_scores(name: str, scores: np.ndarray, shape: tuple[int, ...], granularity: str
                    ) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    expected = group_shape(shape, granularity)
    if s.shape != expected:
        raise ValueError(f"{name}: scores shape {s.shape} != group shape {expected}")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"{name}: scores must be finite and non-negative")
    return s
