"""Reading a client's own data files: ``.npz`` (arrays X, y) and CSV (label last).

Every reader validates before returning: the file exists, X is 2-D, finite and numeric,
y holds integer labels in range, and both have the same number of rows; errors name the
file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _existing(path: str, source: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{source} file {path!r} does not exist or is not a file")
    return file


def read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    file = _existing(path, "npz")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"npz file {path!r} is not a readable .npz archive: {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy loads as an ndarray
        raise ValueError(f"npz file {path!r} is not a readable .npz archive")
    with loaded:
        arrays = {key: loaded[key] for key in ("X", "y") if key in loaded.files}
    if len(arrays) != 2:
        raise ValueError(f"npz file {path!r} must hold arrays 'X' and 'y', has {sorted(arrays)}")
    return arrays["X"], arrays["y"]


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    lines = [ln for ln in _existing(path, "csv").read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"csv file {path!r} is empty")
    try:
        [float(cell) for cell in lines[0].split(",")]
        header = 0
    except ValueError:
        header = 1  # a first line that is not numeric is a header
    if len(lines) == header:
        raise ValueError(f"csv file {path!r} needs >= 1 row of data")
    try:
        table = np.loadtxt(lines[header:], delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"csv file {path!r}: {exc}") from exc
    if table.shape[1] < 2:
        raise ValueError(f"csv file {path!r} needs >= 2 columns (features, label)")
    return table[:, :-1], table[:, -1]


def check_labels(y: np.ndarray, *, what: str, num_classes: int | None) -> None:
    if not (np.isfinite(y).all() and (y == np.round(y)).all() and (y >= 0).all()):
        raise ValueError(f"{what}: labels must be non-negative integers")
    if num_classes is not None and y.max() >= num_classes:
        raise ValueError(f"{what}: label {int(y.max())} out of range for {num_classes} classes")


def validated_arrays(
    X: np.ndarray, y: np.ndarray, *, what: str, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or 0 in X.shape or X.dtype.kind not in "biuf":
        raise ValueError(f"{what}: X must be a non-empty numeric (n, features) array, "
                         f"got {X.dtype} {X.shape}")
    if y.shape != (X.shape[0],) or y.dtype.kind not in "biuf":
        raise ValueError(f"{what}: y must be a numeric ({X.shape[0]},) array, got {y.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{what}: X contains NaN or infinity")
    check_labels(y, what=what, num_classes=num_classes)
    return X.astype(np.float32), y.astype(np.int64)
