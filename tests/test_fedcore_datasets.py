"""W1 digits split, client partitions and local data sources (fedcore.datasets)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcore.datasets import (
    ClientData,
    DataSpec,
    load_client_data,
    load_digits_split,
    load_test_set,
    partition_indices,
    union_train_set,
)


def _arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    if len(dataset) == 0:
        return np.zeros((0, 64), np.float32), np.zeros(0, np.int64)
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs).numpy(), torch.stack(ys).numpy()


def _sorted_rows(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    table = np.column_stack([X, y])
    return table[np.lexsort(table.T[::-1])]


# ---------------------------------------------------------------- W1 split


def test_w1_split_sizes_dtype_and_stratification() -> None:
    X_train, y_train, X_test, y_test = load_digits_split()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= X_train.min() and X_train.max() <= 1.0
    assert np.allclose(np.bincount(y_test) / 360, np.bincount(y_train) / 1437, atol=0.01)


def test_w1_split_is_fixed_and_returns_copies() -> None:
    first = load_digits_split()
    first[0][:] = -1.0
    second, third = load_digits_split(), load_digits_split()
    assert second[0].min() >= 0.0
    assert all(np.array_equal(a, b) for a, b in zip(second, third))


# ---------------------------------------------------------------- partitions


def _check_partition(parts: list[np.ndarray], n: int, min_size: int) -> None:
    everything = np.concatenate(parts)
    assert np.array_equal(np.sort(everything), np.arange(n))  # disjoint and covering
    assert min(len(p) for p in parts) >= min_size
    assert all(np.array_equal(p, np.sort(p)) for p in parts)


@pytest.mark.parametrize("n_clients", [1, 2, 10, 20])
@pytest.mark.parametrize("alpha", [None, 0.5])
def test_w1_partitions_are_deterministic_disjoint_and_covering(n_clients, alpha) -> None:
    y = load_digits_split()[1]
    parts = partition_indices(y, n_clients, alpha=alpha, seed=0)
    _check_partition(parts, len(y), 10)
    again = partition_indices(y, n_clients, alpha=alpha, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


# The standard W1 split (docs/workloads.md): these sizes identify it across systems.
W1_FINGERPRINTS = {
    10: [69, 188, 79, 177, 124, 275, 147, 139, 99, 140],
    3: [423, 397, 617],
}


@pytest.mark.parametrize("n_clients", sorted(W1_FINGERPRINTS))
def test_w1_partition_matches_the_standard_fingerprint(n_clients) -> None:
    y = load_digits_split()[1]
    parts = partition_indices(y, n_clients, alpha=0.5, seed=0)
    assert [len(p) for p in parts] == W1_FINGERPRINTS[n_clients]
    _check_partition(parts, 1437, 10)
    assert all(p.dtype.kind == "i" for p in parts)


def test_w1_partition_is_the_reference_algorithm() -> None:
    """An independent transcription of the docs/workloads.md definition, index for index."""
    y = load_digits_split()[1]
    rng = np.random.RandomState(0)
    while True:
        clients: list[list[int]] = [[] for _ in range(10)]
        for k in range(10):
            members = np.where(y == k)[0]
            rng.shuffle(members)
            p = rng.dirichlet(0.5 * np.ones(10))
            for c, chunk in enumerate(np.split(members, (np.cumsum(p)[:-1] * len(members))
                                                         .astype(int))):
                clients[c] += chunk.tolist()
        if min(map(len, clients)) >= 10:
            break
    expected = [np.sort(np.array(c)) for c in clients]
    parts = partition_indices(y, 10, alpha=0.5, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, expected))


def test_w1_client_data_is_the_whole_partition() -> None:
    """Default spec (val_fraction 0): client i trains on exactly partition i, nothing held out."""
    X_train, y_train, _, _ = load_digits_split()
    parts = partition_indices(y_train, 10, alpha=0.5, seed=0)
    for i in (0, 5):
        data = load_client_data(DataSpec(partition=i, num_partitions=10))
        assert len(data.val) == 0 and len(data.train) == W1_FINGERPRINTS[10][i]
        X, y = _arrays(data.train)
        assert np.array_equal(X, X_train[parts[i]]) and np.array_equal(y, y_train[parts[i]])


def _label_skew(y: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between client and global label distributions."""
    overall = np.bincount(y, minlength=10) / len(y)
    return float(np.mean([
        0.5 * np.abs(np.bincount(y[p], minlength=10) / len(p) - overall).sum() for p in parts
    ]))


def test_dirichlet_half_is_non_iid_and_iid_is_balanced() -> None:
    y = load_digits_split()[1]
    non_iid = partition_indices(y, 10, alpha=0.5, seed=0)
    iid = partition_indices(y, 10, alpha=None, seed=0)
    # IID clients of ~144 samples sit near the chance level of ~0.1; Dirichlet(0.5) far above.
    assert _label_skew(y, non_iid) > 0.3 > 0.15 > _label_skew(y, iid)
    assert {len(p) for p in iid} <= {143, 144}
    other_seed = partition_indices(y, 10, alpha=0.5, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(non_iid, other_seed))


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=20, max_size=200),
    n_clients=st.integers(1, 4),
    alpha=st.one_of(st.none(), st.floats(0.3, 10.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_partition_property(labels, n_clients, alpha, seed) -> None:
    y = np.array(labels, dtype=np.int64)
    parts = partition_indices(y, n_clients, alpha=alpha, seed=seed, min_size=2)
    assert len(parts) == n_clients
    _check_partition(parts, len(y), 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(y=np.zeros(5, dtype=np.int64), n_clients=1, alpha=None, min_size=10), "min_size"),
        (dict(y=np.zeros(50, dtype=np.int64), n_clients=0, alpha=None), "n_clients"),
        (dict(y=np.zeros(50, dtype=np.int64), n_clients=2, alpha=0.0), "alpha"),
        (dict(y=np.zeros(50, dtype=np.int64), n_clients=2, alpha=float("nan")), "alpha"),
        (dict(y=np.zeros(50), n_clients=2, alpha=None), "integer"),
        (dict(y=np.zeros((50, 1), dtype=np.int64), n_clients=2, alpha=None), "1-D"),
        (dict(y=np.zeros(50, dtype=np.int64), n_clients=2, alpha=None, seed=-1), "seed"),
        (dict(y=np.zeros(50, dtype=np.int64), n_clients=2, alpha=None, seed=2**32), "seed"),
    ],
)
def test_partition_rejects_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        partition_indices(**kwargs)


def test_partition_gives_up_when_min_size_is_unreachable() -> None:
    y = np.repeat(np.arange(2), 25)
    with pytest.raises(ValueError, match="raise alpha"):
        partition_indices(y, 5, alpha=0.01, seed=0, min_size=10)


# ---------------------------------------------------------------- DataSpec


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(source="parquet"), "source"),
        (dict(num_partitions=0), "num_partitions"),
        (dict(partition=-1), "partition"),
        (dict(partition=3, num_partitions=3), "partition must be < num_partitions"),
        (dict(alpha=-0.5), "alpha"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**32), "seed"),
        (dict(synthetic_samples=0), "synthetic_samples"),
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(num_classes=0), "num_classes"),
        (dict(source="npz"), "path is required"),
        (dict(source="entrypoint"), "entrypoint is required"),
    ],
)
def test_dataspec_names_the_bad_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        DataSpec(**kwargs)


def test_dataspec_defaults_are_w1() -> None:
    from fedclient.config import ClientConfig

    spec = DataSpec()
    assert (spec.source, spec.alpha, spec.seed, spec.val_fraction) == ("digits", 0.5, 0, 0.0)
    assert ClientConfig(client_id="c").data.val_fraction == 0.0


# ---------------------------------------------------------------- client data


@pytest.mark.parametrize("val_fraction", [0.0, 0.1])
def test_digits_clients_cover_the_training_split_exactly(val_fraction) -> None:
    X_train, y_train, _, _ = load_digits_split()
    clients = [load_client_data(DataSpec(partition=i, num_partitions=5,
                                         val_fraction=val_fraction)) for i in range(5)]
    pieces = [_arrays(c.train) for c in clients] + [_arrays(c.val) for c in clients]
    X = np.concatenate([p[0] for p in pieces])
    y = np.concatenate([p[1] for p in pieces])
    assert np.array_equal(_sorted_rows(X, y), _sorted_rows(X_train, y_train))
    for client in clients:
        assert (client.num_features, client.num_classes) == (64, 10)
        n = len(client.train) + len(client.val)
        assert len(client.val) == round(val_fraction * n)
    x, label = clients[0].train[0]
    assert x.dtype == torch.float32 and label.dtype == torch.int64


def test_client_data_is_deterministic() -> None:
    spec = DataSpec(partition=3, num_partitions=10, seed=0, val_fraction=0.1)
    a, b = load_client_data(spec), load_client_data(spec)
    assert all(np.array_equal(u, v) for u, v in zip(_arrays(a.train), _arrays(b.train)))
    assert all(np.array_equal(u, v) for u, v in zip(_arrays(a.val), _arrays(b.val)))


@pytest.mark.parametrize("val_fraction", [0.0, 0.2])
def test_client_evaluation_without_hold_out_uses_the_training_partition(val_fraction) -> None:
    from fedclient.local_work import LocalWorker
    from fedcore.params import get_parameters
    from fedcore.pb import coordinator_pb2 as cpb

    data = load_client_data(DataSpec(partition=0, num_partitions=10, val_fraction=val_fraction))
    worker = LocalWorker(data)
    params = get_parameters(worker.model("mlp"))
    n, metrics = worker.evaluate(cpb.Task(model_name="mlp"), params)
    held_out = val_fraction > 0
    assert n == (len(data.val) if held_out else len(data.train)) > 0
    assert ("evaluated_on_train" in metrics) is not held_out
    assert metrics.get("evaluated_on_train", 1.0) == 1.0 and 0 <= metrics["accuracy"] <= 1


def test_synthetic_source_fits_the_digits_models() -> None:
    spec = DataSpec(source="synthetic", partition=1, num_partitions=4, synthetic_samples=400)
    data = load_client_data(spec)
    assert (data.num_features, data.num_classes) == (64, 10)
    assert 10 <= len(data.train) + len(data.val) < 400
    assert len(union_train_set(spec)) + sum(
        len(load_client_data(replace(spec, partition=i)).val)
        for i in range(4)
    ) == 400
    test = load_test_set("synthetic")
    assert len(test) == 1000 and test[0][0].shape == (64,)


def test_test_set_and_union_train_set() -> None:
    assert len(load_test_set()) == 360
    assert len(union_train_set(DataSpec(num_partitions=10))) == 1437
    spec = DataSpec(num_partitions=10)
    assert len(union_train_set(spec)) == sum(
        len(load_client_data(DataSpec(partition=i, num_partitions=10)).train) for i in range(10)
    )
    with pytest.raises(ValueError, match="source"):
        load_test_set("parquet")


# ---------------------------------------------------------------- npz / csv files


def _blob(n: int = 30, features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, features)), rng.integers(0, 3, n)


def test_npz_source(tmp_path) -> None:
    X, y = _blob()
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    data = load_client_data(DataSpec(source="npz", path=str(path), val_fraction=0.2))
    assert (len(data.train), len(data.val), data.num_features) == (24, 6, 5)
    assert data.num_classes == int(y.max()) + 1
    assert len(load_test_set("npz", path=str(path))) == 30
    halves = [load_client_data(DataSpec(source="npz", path=str(path), num_partitions=2,
                                        partition=i, alpha=None)) for i in range(2)]
    assert sum(len(h.train) + len(h.val) for h in halves) == 30


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (dict(X=np.zeros((4, 2))), r"must hold arrays 'X' and 'y'"),
        (dict(X=np.zeros(4), y=np.zeros(4)), r"X must be a non-empty numeric \(n, features\)"),
        (dict(X=np.zeros((4, 2)), y=np.zeros(3)), r"y must be a numeric \(4,\) array"),
        (dict(X=np.full((4, 2), np.nan), y=np.zeros(4)), "NaN or infinity"),
        (dict(X=np.zeros((4, 2)), y=np.array([0, 1, -1, 0])), "non-negative integers"),
        (dict(X=np.zeros((4, 2)), y=np.array([0, 1.5, 1, 0])), "non-negative integers"),
        (dict(X=np.zeros((4, 2)), y=np.array([0, 1, 9, 0])), "label 9 out of range for 3"),
        (dict(X=np.array([["a", "b"]] * 4), y=np.zeros(4)), "non-empty numeric"),
    ],
)
def test_npz_source_rejects_bad_arrays(tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_client_data(DataSpec(source="npz", path=str(path), num_classes=3))


def test_npz_source_rejects_missing_and_non_archive_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_client_data(DataSpec(source="npz", path=str(tmp_path / "missing.npz")))
    for name, content in [("plain.npy", None), ("junk.npz", b"not a zip file")]:
        path = tmp_path / name
        if content is None:
            np.save(path, np.zeros(3))
        else:
            path.write_bytes(content)
        with pytest.raises(ValueError, match="not a readable .npz archive"):
            load_client_data(DataSpec(source="npz", path=str(path)))


@pytest.mark.parametrize("header", ["", "f0,f1,label\n"])
def test_csv_source_with_and_without_header(tmp_path, header) -> None:
    path = tmp_path / "data.csv"
    rows = "".join(f"{i * 0.1},{-i},{i % 2}\n" for i in range(20))
    path.write_text(header + rows)
    data = load_client_data(DataSpec(source="csv", path=str(path), val_fraction=0.25))
    assert (len(data.train), len(data.val), data.num_features, data.num_classes) == (15, 5, 2, 2)
    X, y = _arrays(load_test_set("csv", path=str(path)))
    assert np.allclose(X[3], [0.3, -3.0]) and y[3] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("a,b\n", "needs >= 1 row"),
        ("1\n2\n", ">= 2 columns"),
        ("1,0\nx,1\n", "csv file"),
        ("1,0\n2,0.5\n", "non-negative integers"),
        ("1,0\ninf,1\n", "NaN or infinity"),
    ],
)
def test_csv_source_rejects_bad_files(tmp_path, content, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_client_data(DataSpec(source="csv", path=str(path)))


# ---------------------------------------------------------------- entry points

_PLUGIN = """
import torch
from torch.utils.data import TensorDataset

def _data(n):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 6, generator=g), torch.arange(n) % 4)

def whole(spec):
    return _data(20 + spec.partition)

def pair(spec):
    return _data(12), _data(3)

def wrong(spec):
    return [1, 2, 3]

def ready(spec):
    from fedcore.datasets import ClientData
    return ClientData(_data(5), _data(2), 6, 7)

def negative(spec):
    return TensorDataset(torch.zeros(3, 2), torch.tensor([0, -1, 1]))
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "fedprune_data_plugin.py").write_text(_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fedprune_data_plugin"


def test_entrypoint_source(plugin: str) -> None:
    data = load_client_data(DataSpec(source="entrypoint", entrypoint=f"{plugin}:whole",
                                     partition=1, num_partitions=2, val_fraction=0.1))
    assert (len(data.train), len(data.val), data.num_features, data.num_classes) == (19, 2, 6, 4)
    pair = load_client_data(DataSpec(source="entrypoint", entrypoint=f"{plugin}:pair"))
    assert (len(pair.train), len(pair.val)) == (12, 3)
    ready = load_client_data(DataSpec(source="entrypoint", entrypoint=f"{plugin}:ready"))
    assert isinstance(ready, ClientData) and ready.num_classes == 7


@pytest.mark.parametrize(
    ("function", "message"),
    [("wrong", "returned list"), ("negative", "non-negative"), ("absent", "'absent' not found")],
)
def test_entrypoint_source_errors(plugin: str, function: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_client_data(DataSpec(source="entrypoint", entrypoint=f"{plugin}:{function}"))


def test_load_client_data_rejects_non_spec() -> None:
    with pytest.raises(ValueError, match="spec must be a DataSpec"):
        load_client_data({"source": "digits"})  # type: ignore[arg-type]
