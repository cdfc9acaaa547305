"""Unlabeled server-side inputs for distillation: an ``npz`` file, or procedural strokes.

FedCompress distils on *unlabeled out-of-distribution* data the server holds. W1's digits
have no natural out-of-distribution set, so ``procedural`` generates one: 8 x 8 images
(flattened to 64 features in [0, 1], the range of W1's ``pixel / 16`` features) of 1 to 3
random pen strokes. A stroke is a straight segment between two uniform random points of
the canvas ``[0, 7]^2``, drawn with a random width ``w`` in [0.6, 1.4] pixels: a pixel's
ink is ``max(0, 1 - distance_to_segment / w)``; strokes combine by maximum; each image is
scaled by a random contrast in [0.5, 1]. No digit is drawn on purpose: the images share
the digits' stroke statistics, not their classes. Seeded (numpy ``default_rng``; this is
data, not a privacy mechanism), so every run of a configuration distils on the same set.

An ``npz`` source must hold one float array ``x`` of shape ``(n, features)``, finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROCEDURAL = "procedural"
MAX_EXAMPLES = 1 << 20
SIDE = 8


def _segment_distance(px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of every pixel centre ``px`` (P, 2) to the segment ``a``-``b``."""
    ab = b - a
    denom = float(ab @ ab)
    t = np.clip(((px - a) @ ab) / denom, 0.0, 1.0) if denom > 0 else np.zeros(len(px))
    return np.linalg.norm(px - (a + t[:, None] * ab), axis=1)


def procedural_strokes(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` stroke images as float32 ``(n, 64)`` in [0, 1] (see the module doc)."""
    if not 1 <= n <= MAX_EXAMPLES:
        raise ValueError(f"n must be in 1..{MAX_EXAMPLES}, got {n}")
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    out = np.zeros((n, SIDE * SIDE), dtype=np.float32)
    for i in range(n):
        ink = np.zeros(SIDE * SIDE)
        for _ in range(int(rng.integers(1, 4))):
            a, b = rng.uniform(0, SIDE - 1, 2), rng.uniform(0, SIDE - 1, 2)
            width = rng.uniform(0.6, 1.4)
            ink = np.maximum(ink, np.clip(1 - _segment_distance(pixels, a, b) / width, 0, 1))
        out[i] = ink * rng.uniform(0.5, 1.0)
    return out


def load_unlabeled(source: str, *, features: int, examples: int, seed: int = 0) -> np.ndarray:
    """The distillation inputs of ``source`` (``procedural`` or an ``.npz`` path)."""
    if source == PROCEDURAL:
        if features != SIDE * SIDE:
            raise ValueError(f"the procedural set has {SIDE * SIDE} features, the model "
                             f"takes {features}: give an npz of unlabeled inputs")
        return procedural_strokes(examples, seed=seed)
    path = Path(source)
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"{source}: not 'procedural' or an existing .npz file")
    with np.load(path, allow_pickle=False) as f:
        if "x" not in f.files:
            raise ValueError(f"{source}: needs an array 'x' of unlabeled inputs")
        x = np.asarray(f["x"])
    if x.ndim != 2 or x.shape[1] != features or not 1 <= len(x) <= MAX_EXAMPLES:
        raise ValueError(f"{source}: 'x' must have shape (n, {features}) with 1 <= n <= "
                         f"{MAX_EXAMPLES}, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise ValueError(f"{source}: 'x' must be finite floats")
    return x.astype(np.float32)
