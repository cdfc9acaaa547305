"""Client and server data: the W1 digits federation plus pluggable local sources.

Contract:

- W1 (docs/workloads.md): ``load_digits`` features / 16.0 as float32; a fixed stratified
  split ``train_test_split(test_size=0.2, random_state=0, stratify=y)`` gives 1437 training
  and 360 test samples. The training 80% is split across clients by
  :func:`partition_indices` (Dirichlet(0.5) label skew from ``RandomState(0)``, >= 10
  samples each; 10 clients get [69, 188, 79, 177, 124, 275, 147, 139, 99, 140]).
- A :class:`DataSpec` fully determines a client's data: the same spec gives the same
  samples in every process. Array sources (digits, synthetic, npz, csv) load (X, y),
  take partition ``partition`` of ``num_partitions`` (all of it when there is one), then
  hold out ``val_fraction`` of that partition, seeded by (seed, partition), for
  validation. The default ``val_fraction`` is 0 (W1: a client trains on its whole
  partition and ``val`` is empty). An ``entrypoint`` source is called as ``fn(spec)`` and
  returns a torch ``Dataset`` (split the same way), a ``(train, val)`` pair, or a
  :class:`ClientData`.
- Array sources yield ``(x: float32 tensor of num_features, y: int64 scalar)``.
- Bad input (missing file, wrong shape, non-finite X, negative / non-integer / out of
  range labels) raises ``ValueError`` naming the source. Randomness comes only from
  numpy / torch generators built from the spec's seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, TensorDataset, random_split

from fedcore._checks import check_int
from fedcore.datafiles import check_labels, read_csv, read_npz, validated_arrays
from fedcore.entrypoints import load_entrypoint

__all__ = [
    "SOURCES",
    "ClientData",
    "DataSpec",
    "MAX_SEED",
    "load_client_data",
    "load_digits_split",
    "load_test_set",
    "partition_indices",
    "union_train_set",
]

SOURCES = frozenset({"digits", "synthetic", "npz", "csv", "entrypoint"})
_MAX_PARTITION_ATTEMPTS = 1000
MAX_SEED = 2**32 - 1  # np.random.RandomState accepts seeds in [0, 2**32 - 1]
_SYNTH_FEATURES, _SYNTH_CLASSES = 64, 10


@dataclass(frozen=True)
class DataSpec:
    """Where a client's data comes from. ``num_classes`` None = 10 for digits/synthetic,
    max label + 1 of the whole file for npz/csv (set it so all clients agree)."""

    source: str = "digits"
    partition: int = 0
    num_partitions: int = 1
    alpha: float | None = 0.5
    seed: int = 0
    path: str = ""
    entrypoint: str = ""
    synthetic_samples: int = 1000
    val_fraction: float = 0.0
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {sorted(SOURCES)}, got {self.source!r}")
        check_int("num_partitions", self.num_partitions, low=1)
        check_int("partition", self.partition, low=0)
        if self.partition >= self.num_partitions:
            raise ValueError(f"partition must be < num_partitions, got {self.partition}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be None or a finite number > 0, got {self.alpha!r}")
        check_int("seed", self.seed, low=0, high=MAX_SEED)
        check_int("synthetic_samples", self.synthetic_samples, low=1)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, low=1)
        if self.source in ("npz", "csv") and not self.path:
            raise ValueError(f"path is required for source {self.source!r}")
        if self.source == "entrypoint" and not self.entrypoint:
            raise ValueError("entrypoint is required for source 'entrypoint'")


@dataclass(frozen=True)
class ClientData:
    """A client's local data. ``val`` may be empty when ``val_fraction`` is 0."""

    train: Dataset
    val: Dataset
    num_features: int
    num_classes: int


def _digits_split() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    parts = train_test_split(X, y.astype(np.int64), test_size=0.2, random_state=0, stratify=y)
    for array in parts:
        array.flags.writeable = False  # the cache is shared; callers get copies
    return tuple(parts)


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The W1 split ``(X_train, y_train, X_test, y_test)``: (1437, 64) / (360, 64) float32.

    >>> [a.shape for a in load_digits_split()]
    [(1437, 64), (1437,), (360, 64), (360,)]
    """
    X_train, X_test, y_train, y_test = (a.copy() for a in _digits_split())
    return X_train, y_train, X_test, y_test


def partition_indices(
    y: np.ndarray, n_clients: int, *, alpha: float | None, seed: int = 0, min_size: int = 10
) -> list[np.ndarray]:
    """Split ``range(len(y))`` into ``n_clients`` disjoint, covering, sorted index arrays.

    All randomness comes from one ``np.random.RandomState(seed)`` (``0 <= seed <=
    MAX_SEED``), so the result depends only on (y, n_clients, alpha, seed, min_size).

    ``alpha`` None (IID): one ``rng.permutation`` cut into near-equal contiguous parts.
    Otherwise the standard Dirichlet label-skew split (docs/workloads.md, W1): for each
    class in ascending order, shuffle its indices (``rng.shuffle``), draw
    ``p ~ rng.dirichlet(alpha * ones(n_clients))``, cut at
    ``floor(cumsum(p)[:-1] * n_class)`` and give slice c to client c. The whole draw
    repeats with the same generator (no reseeding) until every client has >= ``min_size``
    samples; after ``_MAX_PARTITION_ATTEMPTS`` draws it raises ``ValueError``.

    >>> [len(p) for p in partition_indices(np.arange(10) % 2, 3, alpha=None, min_size=3)]
    [4, 3, 3]
    """
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) == 0:
        raise ValueError(f"y must be a non-empty 1-D integer array, got {labels.dtype} "
                         f"{labels.shape}")
    check_int("n_clients", n_clients, low=1)
    check_int("min_size", min_size, low=0)
    check_int("seed", seed, low=0, high=MAX_SEED)
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be None or a finite number > 0, got {alpha!r}")
    if len(labels) < n_clients * min_size:
        raise ValueError(f"n_clients * min_size = {n_clients * min_size} > {len(labels)} samples")
    rng = np.random.RandomState(seed)
    if alpha is None:
        return [np.sort(p) for p in np.array_split(rng.permutation(len(labels)), n_clients)]
    for _ in range(_MAX_PARTITION_ATTEMPTS):
        result = _dirichlet_draw(labels, n_clients, alpha, rng)
        if min(len(p) for p in result) >= min_size:
            return result
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) split gives every one of {n_clients} clients "
        f">= {min_size} samples after {_MAX_PARTITION_ATTEMPTS} draws; raise alpha or min_size"
    )


def _dirichlet_draw(
    labels: np.ndarray, n_clients: int, alpha: float, rng: np.random.RandomState
) -> list[np.ndarray]:
    """One draw: per class (ascending), shuffled members cut by Dirichlet(alpha) shares."""
    parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        shares = rng.dirichlet(alpha * np.ones(n_clients))
        cuts = np.floor(np.cumsum(shares)[:-1] * len(members)).astype(int)
        for client, chunk in enumerate(np.split(members, cuts)):
            parts[client].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _synthetic(n: int, *, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class blobs; centres depend only on ``seed``, samples on (seed, stream)."""
    centres = np.random.default_rng([seed, 0]).normal(0.0, 0.5, (_SYNTH_CLASSES, _SYNTH_FEATURES))
    rng = np.random.default_rng([seed, stream])
    y = rng.integers(0, _SYNTH_CLASSES, n)
    X = centres[y] + rng.normal(0.0, 1.0, (n, _SYNTH_FEATURES))
    return X.astype(np.float32), y.astype(np.int64)


def _digits_arrays(spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    X_train, y_train, _, _ = load_digits_split()
    return X_train, y_train


_ARRAY_SOURCES: dict[str, Callable[[DataSpec], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits_arrays,
    "synthetic": lambda spec: _synthetic(spec.synthetic_samples, seed=spec.seed, stream=1),
    "npz": lambda spec: read_npz(spec.path),
    "csv": lambda spec: read_csv(spec.path),
}


def _tensors(X: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y))


def _val_count(n: int, fraction: float) -> int:
    """Validation size: rounded fraction, >= 1 if fraction > 0, leaving >= 1 for training."""
    if fraction == 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def _partition_source(spec: DataSpec
                      ) -> tuple[np.ndarray, np.ndarray, int, tuple[np.ndarray, ...]]:
    """The validated source arrays (read-only), class count and every partition's indices
    of ``spec`` (given with partition 0)."""
    num_classes = spec.num_classes or (10 if spec.source in ("digits", "synthetic") else None)
    X, y = validated_arrays(*_ARRAY_SOURCES[spec.source](spec), what=spec.source,
                      num_classes=num_classes)
    num_classes = num_classes or int(y.max()) + 1
    parts = ((np.arange(len(y)),) if spec.num_partitions == 1 else
             tuple(partition_indices(y, spec.num_partitions, alpha=spec.alpha, seed=spec.seed)))
    for array in (X, y, *parts):
        array.flags.writeable = False  # shared by every caller; indexing returns copies
    return X, y, num_classes, parts


# Generated sources are pure functions of the spec: computed once per process, so the
# virtual clients of a client pool (fedclient.pool) share one source instead of each
# rebuilding it. Files are read again on every load (they may change between loads).
_shared_source = lru_cache(maxsize=4)(_partition_source)
_GENERATED = frozenset({"digits", "synthetic"})


def _array_client_data(spec: DataSpec) -> ClientData:
    source = _shared_source if spec.source in _GENERATED else _partition_source
    X, y, num_classes, parts = source(replace(spec, partition=0))
    idx = np.random.default_rng([spec.seed, spec.partition]).permutation(parts[spec.partition])
    n_val = _val_count(len(idx), spec.val_fraction)
    val, train = np.sort(idx[:n_val]), np.sort(idx[n_val:])
    return ClientData(_tensors(X[train], y[train]), _tensors(X[val], y[val]), X.shape[1],
                      num_classes)


def _entrypoint_client_data(spec: DataSpec) -> ClientData:
    result = load_entrypoint(spec.entrypoint)(spec)
    if isinstance(result, ClientData):
        return result
    if isinstance(result, tuple) and len(result) == 2:
        train, val = result
    elif isinstance(result, Dataset):
        n_val = _val_count(len(result), spec.val_fraction)
        seed = int(np.random.default_rng([spec.seed, spec.partition]).integers(2**62))
        generator = torch.Generator().manual_seed(seed)
        val, train = random_split(result, [n_val, len(result) - n_val], generator=generator)
    else:
        raise ValueError(f"entry point {spec.entrypoint!r} returned {type(result).__name__}; "
                         "expected a Dataset, a (train, val) tuple or a ClientData")
    if len(train) == 0:
        raise ValueError(f"entry point {spec.entrypoint!r} returned an empty training set")
    labels = np.array([int(train[i][1]) for i in range(len(train))]
                      + [int(val[i][1]) for i in range(len(val))])
    num_classes = spec.num_classes or int(labels.max()) + 1
    check_labels(labels, what=spec.entrypoint, num_classes=num_classes)
    return ClientData(train, val, int(torch.as_tensor(train[0][0]).numel()), num_classes)


def load_client_data(spec: DataSpec) -> ClientData:
    """The training and validation data of client ``spec.partition`` (see module doc)."""
    if not isinstance(spec, DataSpec):
        raise ValueError(f"spec must be a DataSpec, got {type(spec).__name__}")
    if spec.source == "entrypoint":
        return _entrypoint_client_data(spec)
    return _array_client_data(spec)


def load_test_set(source: str = "digits", *, path: str = "", seed: int = 0) -> Dataset:
    """Server-side held-out set: W1's 20% digits split, fresh synthetic samples drawn from
    the same blobs as ``DataSpec(source="synthetic", seed=seed)``, or a whole npz/csv file."""
    if source == "digits":
        _, _, X, y = load_digits_split()
    elif source == "synthetic":
        X, y = _synthetic(1000, seed=seed, stream=2)
    elif source in ("npz", "csv"):
        X, y = validated_arrays(*_ARRAY_SOURCES[source](DataSpec(source=source, path=path)),
                          what=source, num_classes=None)
    else:
        raise ValueError(f"source must be digits, synthetic, npz or csv, got {source!r}")
    return _tensors(X, y)


def union_train_set(spec: DataSpec) -> Dataset:
    """Union of the training sets of all ``spec.num_partitions`` clients (the centralized
    baseline sees exactly the data the federation trains on); ``spec.partition`` is ignored."""
    return ConcatDataset(
        [load_client_data(replace(spec, partition=i)).train for i in range(spec.num_partitions)]
    )
