"""Deterministic 1-D k-means (Lloyd) in O(n log n + iterations * k log n).

Why it is fast: in one dimension a cluster is a contiguous run of the *sorted* values, so
after one sort every Lloyd step needs only the cluster boundaries (``searchsorted`` of
the centroid midpoints) and prefix sums of the values -- no N x k distance matrix.
The data is reduced to its distinct values with multiplicities first, so exact duplicates
(e.g. the zeros of a pruned tensor) cost nothing.

Initialisation is k-means++ (D^2 sampling, seeded by ``seed``), done exactly on the
sorted distinct values with prefix sums of ``w*x`` and ``w*x^2``: the D^2 mass of every
cell between centroid midpoints is O(1), and the sampled point inside a cell is found by
bisection. An empty cluster is re-seeded deterministically at the value farthest from
its centroid. ``k`` is capped at the number of distinct values; with ``k >= distinct``
the codebook is exactly the distinct values (lossless clustering).

>>> codebook, labels = kmeans_1d(np.array([0.0, 0.1, 5.0, 5.2, 9.0]), 3)
>>> codebook.tolist(), labels.tolist()
([0.05000000074505806, 5.099999904632568, 9.0], [0, 0, 1, 1, 2])
"""

from __future__ import annotations

import numpy as np


class _Prefix:
    """Prefix sums over sorted distinct values ``x`` with weights ``w``."""

    def __init__(self, x: np.ndarray, w: np.ndarray) -> None:
        self.x = x
        self.n = np.concatenate(([0.0], np.cumsum(w)))
        self.s = np.concatenate(([0.0], np.cumsum(w * x)))
        self.q = np.concatenate(([0.0], np.cumsum(w * x * x)))

    def cost(self, lo: np.ndarray, hi: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Sum of ``w * (x - c)^2`` over ``x[lo:hi]`` (vectorised over cells)."""
        n, s, q = self.n[hi] - self.n[lo], self.s[hi] - self.s[lo], self.q[hi] - self.q[lo]
        return np.maximum(q - 2.0 * c * s + c * c * n, 0.0)

    def cells(self, centers: np.ndarray) -> np.ndarray:
        """Boundaries ``b`` (len k+1): cluster j is ``x[b[j]:b[j+1]]`` (ties go left)."""
        mids = (centers[:-1] + centers[1:]) / 2.0
        inner = np.searchsorted(self.x, mids, side="right")
        return np.concatenate(([0], inner, [self.x.size]))


def kmeans_1d(values: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 50
              ) -> tuple[np.ndarray, np.ndarray]:
    """Cluster finite ``values`` into at most ``k`` centroids.

    Returns ``(codebook, labels)``: a float32 codebook sorted strictly ascending (its
    length is ``min(k, distinct values)``, and at least 1) and int64 labels of
    ``values``' shape, each the index of the nearest centroid.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative int, got {max_iter!r}")
    x = np.asarray(values, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    flat = x.ravel()
    if flat.size == 0:
        return np.zeros(1, dtype=np.float32), np.zeros(x.shape, dtype=np.int64)
    distinct, weights = _distinct(flat)
    if distinct.size <= k:  # lossless: every distinct value is its own centroid
        codebook = distinct.astype(np.float32)
        return codebook, np.searchsorted(codebook, flat).astype(np.int64).reshape(x.shape)
    prefix = _Prefix(distinct, weights)
    centers = _kmeanspp(prefix, k, np.random.default_rng(seed))
    codebook = np.unique(_lloyd(prefix, centers, max_iter).astype(np.float32))
    return codebook, assign(flat, codebook).reshape(x.shape)


def assign(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of a strictly ascending float32 ``codebook``.

    Midpoints are rounded to float32 (2.5x faster than a float64 search on 10M values);
    a value within half an ulp of a midpoint may go to the other, equally near, centroid.
    """
    cb = codebook.astype(np.float64)
    mids = ((cb[:-1] + cb[1:]) / 2.0).astype(np.float32)
    return np.searchsorted(mids, values.astype(np.float32), side="left").astype(np.int64)


def _distinct(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.sort(flat)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    counts = np.diff(np.concatenate((starts, [s.size]))).astype(np.float64)
    return s[starts].astype(np.float64), counts


def _kmeanspp(p: _Prefix, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding over distinct values weighted by multiplicity."""
    first = int(np.searchsorted(p.n, rng.random() * p.n[-1], side="right")) - 1
    centers = np.array([p.x[min(first, p.x.size - 1)]])
    while centers.size < k:
        bounds = p.cells(centers)
        mass = p.cost(bounds[:-1], bounds[1:], centers)
        total = float(mass.sum())
        if total <= 0.0:  # only reachable through float round-off: fall back
            centers = np.sort(np.append(centers, _farthest(p, centers)))
            continue
        target = rng.random() * total
        cell = min(int(np.searchsorted(np.cumsum(mass), target, side="right")), mass.size - 1)
        lo, hi, c = int(bounds[cell]), int(bounds[cell + 1]), centers[cell]
        base = float(target - (np.cumsum(mass)[cell] - mass[cell]))
        while hi - lo > 1:  # bisection: the D^2 mass of x[lo:mid] grows with mid
            mid = (lo + hi) // 2
            if float(p.cost(np.array([bounds[cell]]), np.array([mid]), c)[0]) > base:
                hi = mid
            else:
                lo = mid
        centers = np.sort(np.append(centers, p.x[lo]))
        if np.unique(centers).size != centers.size:  # picked an existing center
            centers = np.unique(centers)
            centers = np.sort(np.append(centers, _farthest(p, centers)))
    return centers


def _farthest(p: _Prefix, centers: np.ndarray) -> float:
    """The distinct value farthest from its nearest center (always a cell endpoint)."""
    bounds = p.cells(centers)
    lo, hi = bounds[:-1], bounds[1:]
    full = hi > lo
    left = np.where(full, np.abs(p.x[np.minimum(lo, p.x.size - 1)] - centers), -1.0)
    right = np.where(full, np.abs(p.x[np.maximum(hi - 1, 0)] - centers), -1.0)
    j = int(np.argmax(np.maximum(left, right)))
    return float(p.x[lo[j]] if left[j] >= right[j] else p.x[hi[j] - 1])


def _lloyd(p: _Prefix, centers: np.ndarray, max_iter: int) -> np.ndarray:
    """Lloyd iterations on prefix sums; empty clusters re-seeded at the farthest value."""
    for _ in range(max_iter):
        bounds = p.cells(centers)
        n = p.n[bounds[1:]] - p.n[bounds[:-1]]
        s = p.s[bounds[1:]] - p.s[bounds[:-1]]
        empty = n == 0
        new = np.where(empty, centers, s / np.where(empty, 1.0, n))
        if empty.any():
            kept = np.unique(new[~empty])
            while kept.size < centers.size:
                kept = np.sort(np.append(kept, _farthest(p, kept)))
            new = kept
        new = np.sort(new)
        if np.array_equal(new, centers):
            break
        centers = new
    return centers
