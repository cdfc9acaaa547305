"""Known-answer and property tests of the building blocks: bit packing, varints,
k-means, quantization, pruning masks, byte/entropy accounting; plus the package's
doctests and its import hygiene (numpy, zstandard and the stdlib only)."""

from __future__ import annotations

import doctest
import importlib
import math
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fedcompression
from fedcompression import (
    TensorEncoding,
    allocate_masks,
    empirical_entropy_bits,
    encode_mask,
    encode_tensor,
    entropy_bound_bits,
    group_scores,
    kmeans_1d,
    magnitude_scores,
    mask_from_scores,
    pack_bits,
    payload_nbytes,
    unpack_bits,
)
from fedcompression.varint import decode_varints, encode_varints

MODULES = sorted(m.name for m in pkgutil.iter_modules(fedcompression.__path__))


@pytest.mark.parametrize("module", ["__init__"] + MODULES)
def test_doctests(module: str) -> None:
    name = "fedcompression" if module == "__init__" else f"fedcompression.{module}"
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_imports_only_numpy_zstandard_and_stdlib() -> None:
    code = ("import sys, fedcompression; "
            "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    root = Path(fedcompression.__file__).resolve().parent.parent
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True, cwd=root).stdout.split()
    allowed = set(sys.stdlib_module_names) | {"numpy", "zstandard", "fedcompression"}
    foreign = [m for m in loaded if m not in allowed and not m.startswith("_")]
    assert not foreign, f"fedcompression pulled in {foreign}"


# --- bit packing -------------------------------------------------------------------

def test_pack_bits_known_answers() -> None:
    assert pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1) == bytes([0b1101, 0b1])
    assert pack_bits(np.array([0x3, 0xA, 0x5]), 4) == bytes([0xA3, 0x05])  # low nibble first
    assert pack_bits(np.array([5, 2, 7]), 3) == bytes([0b11010101, 0b1])
    assert pack_bits(np.array([], dtype=np.uint8), 5) == b""


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), count=st.integers(0, 300), seed=st.integers(0, 1000))
def test_pack_unpack_round_trip(bits: int, count: int, seed: int) -> None:
    values = np.random.default_rng(seed).integers(0, 1 << bits, count)
    packed = pack_bits(values, bits)
    assert len(packed) == math.ceil(count * bits / 8)
    assert np.array_equal(unpack_bits(packed, bits, count), values)
    # matches the reference definition: bit j of the stream is bit j % 8 of byte j // 8
    stream = [(int(v) >> b) & 1 for v in values for b in range(bits)]
    ref = np.packbits(np.array(stream, dtype=np.uint8), bitorder="little").tobytes()
    assert packed == ref


def test_pack_bits_rejects_bad_arguments() -> None:
    for bits in (0, 9, 2.0, True):
        with pytest.raises(ValueError):
            pack_bits(np.array([0]), bits)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pack_bits(np.array([4]), 2)
    with pytest.raises(ValueError):
        pack_bits(np.array([-1]), 2)
    with pytest.raises(ValueError):
        unpack_bits(b"\0\0\0", 4, 3)


# --- varints -----------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=50))
def test_varints_round_trip_and_match_reference(values: list[int]) -> None:
    def leb128(v: int) -> bytes:
        out = bytearray()
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                return bytes(out)
    data = encode_varints(np.array(values, dtype=np.uint64))
    assert data == b"".join(leb128(v) for v in values)
    assert decode_varints(data, len(values)).tolist() == values


def test_varint_rejects_values_beyond_64_bits() -> None:
    with pytest.raises(ValueError, match="2\\*\\*64"):
        decode_varints(bytes([0xFF] * 9 + [0x02]), 1)


def test_varint_decoding_is_vectorised() -> None:
    gaps = np.random.default_rng(0).geometric(0.002, 1_000_000).astype(np.uint64)
    data = encode_varints(gaps)
    start = time.perf_counter()
    assert np.array_equal(decode_varints(data, gaps.size), gaps)
    assert time.perf_counter() - start < 1.0


# --- k-means -----------------------------------------------------------------------

def test_kmeans_is_deterministic_sorted_and_capped() -> None:
    x = np.random.default_rng(0).normal(size=5000)
    cb1, lab1 = kmeans_1d(x, 16, seed=3)
    cb2, lab2 = kmeans_1d(x, 16, seed=3)
    assert np.array_equal(cb1, cb2) and np.array_equal(lab1, lab2)
    assert cb1.dtype == np.float32 and np.all(np.diff(cb1) > 0) and cb1.size == 16
    cb, lab = kmeans_1d(np.array([2.0, 2.0, -1.0]), 8)
    assert cb.tolist() == [-1.0, 2.0] and lab.tolist() == [1, 1, 0]
    assert kmeans_1d(np.zeros((0, 3)), 4)[1].shape == (0, 3)


def test_kmeans_labels_are_nearest_and_beat_uniform_quantization() -> None:
    x = np.random.default_rng(1).normal(0, 0.05, 20000).astype(np.float32)
    cb, lab = kmeans_1d(x, 16)
    dist = np.abs(x[:, None].astype(np.float64) - cb[None, :])
    assert np.all(dist[np.arange(x.size), lab] <= dist.min(axis=1) + 1e-7)
    mse = float(np.mean((cb[lab] - x) ** 2))
    step = (x.max() - x.min()) / 16
    assert mse < step**2 / 12  # Lloyd-Max beats the uniform grid on a Gaussian
    assert np.unique(lab).size == 16  # no empty clusters


def test_kmeans_reseeds_empty_clusters_on_heavy_duplicates() -> None:
    x = np.concatenate([np.zeros(10000), np.arange(1, 6, dtype=float), [1000.0]])
    cb, lab = kmeans_1d(x, 5, seed=0)
    assert cb.size == 5 and np.unique(lab).size == 5
    assert 1000.0 in cb.tolist() and 0.0 in cb.tolist()


def test_kmeans_is_fast_on_a_million_values() -> None:
    x = np.random.default_rng(2).normal(size=1_000_000).astype(np.float32)
    start = time.perf_counter()
    kmeans_1d(x, 256)
    assert time.perf_counter() - start < 2.0


def test_kmeans_rejects_bad_arguments() -> None:
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            kmeans_1d(np.ones(3), k)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        kmeans_1d(np.array([np.nan]), 2)


# --- pruning -----------------------------------------------------------------------

def test_group_scores_and_masks_by_granularity() -> None:
    w = np.array([[3.0, 4.0, 0.0], [0.0, 0.1, 0.0]])  # [out=2, in=3]
    assert group_scores(w, "rows").tolist() == [5.0, 0.1]
    assert np.allclose(group_scores(w, "columns"), [3.0, np.hypot(4.0, 0.1), 0.0])
    assert np.array_equal(magnitude_scores(w), np.abs(w))
    cols = mask_from_scores(group_scores(w, "columns"), 1 / 3, "columns", w.shape)
    assert cols.tolist() == [[True, True, False], [True, True, False]]
    conv = np.zeros((4, 2, 3, 3))
    conv[2] = 1.0
    keep = mask_from_scores(group_scores(conv, "channels"), 0.75, "channels", conv.shape)
    assert keep.shape == conv.shape and keep[2].all() and not keep[[0, 1, 3]].any()
    with pytest.raises(ValueError):
        group_scores(conv, "rows")
    with pytest.raises(ValueError):
        group_scores(w, "blocks")


def test_mask_from_scores_ties_are_deterministic() -> None:
    scores = np.ones(10)
    mask = mask_from_scores(scores, 0.5, "unstructured", (10,))
    assert mask.tolist() == [True] * 5 + [False] * 5
    assert mask_from_scores(scores, 0.0, "unstructured", (10,)).all()
    assert not mask_from_scores(scores, 1.0, "unstructured", (10,)).any()
    with pytest.raises(ValueError):
        mask_from_scores(scores, 1.5, "unstructured", (10,))
    with pytest.raises(ValueError):
        mask_from_scores(scores, 0.5, "unstructured", (11,))


@settings(max_examples=40, deadline=None)
@given(sparsity=st.floats(0.0, 1.0), seed=st.integers(0, 1000),
       granularity=st.sampled_from(["unstructured", "rows", "columns"]),
       allocation=st.sampled_from(["uniform", "global"]))
def test_allocate_masks_hits_the_budget(sparsity: float, seed: int, granularity: str,
                                        allocation: str) -> None:
    rng = np.random.default_rng(seed)
    shapes = {"a": (20, 10), "b": (8, 30), "c": (5, 5)}
    weights = {n: rng.normal(0, 1 + i, s) for i, (n, s) in enumerate(shapes.items())}
    scores = {n: group_scores(w, granularity) for n, w in weights.items()}
    masks = allocate_masks(scores, sparsity, allocation=allocation, granularity=granularity,
                           shapes=shapes)
    assert {n: m.shape for n, m in masks.items()} == shapes
    pruned = sum(int((~m).sum()) for m in masks.values())
    total = sum(m.size for m in masks.values())
    if allocation == "global":
        assert all(m.any() for m in masks.values())  # at least one group per tensor
        group = {"unstructured": lambda s: 1, "rows": lambda s: s[1],
                 "columns": lambda s: s[0]}[granularity]
        budget = math.floor(sparsity * total + 0.5)
        reachable = total - sum(group(s) for s in shapes.values())  # best groups stay
        assert min(budget, reachable) - max(group(s) for s in shapes.values()) < pruned
        assert pruned <= budget
    elif granularity == "unstructured":
        assert all(abs(int((~m).sum()) - sparsity * m.size) <= 0.5 for m in masks.values())
    for name, m in masks.items():  # kept groups outscore pruned groups of the same tensor
        kept, gone = weights[name][m], weights[name][~m]
        if granularity == "unstructured" and kept.size and gone.size:
            assert np.abs(kept).min() >= np.abs(gone).max()


def test_global_allocation_prunes_unimportant_layers_more() -> None:
    rng = np.random.default_rng(0)
    shapes = {"flat": (100, 100), "peaky": (100, 100)}
    flat = rng.uniform(0.9, 1.1, shapes["flat"])
    peaky = np.abs(rng.standard_cauchy(shapes["peaky"]))
    scores = {"flat": group_scores(flat, "unstructured"),
              "peaky": group_scores(peaky, "unstructured")}
    masks = allocate_masks(scores, 0.5, allocation="global", shapes=shapes)
    assert (~masks["peaky"]).mean() > 0.6
    assert (~masks["flat"]).mean() < 0.4
    with pytest.raises(ValueError):
        allocate_masks(scores, 0.5, allocation="magic", shapes=shapes)
    with pytest.raises(ValueError):
        allocate_masks(scores, 0.5, shapes={"flat": (100, 100)})


# --- accounting --------------------------------------------------------------------

def test_empirical_entropy_known_answers() -> None:
    assert empirical_entropy_bits(np.zeros(10, np.uint8)) == 0.0
    assert empirical_entropy_bits(np.arange(256, dtype=np.uint8)) == 256 * 8
    assert empirical_entropy_bits(np.array([0, 1, 2, 3] * 5, dtype=np.uint32)) == 40.0
    assert empirical_entropy_bits(np.array([], dtype=np.uint8)) == 0.0


def test_entropy_bound_definition() -> None:
    x = np.zeros(1000, np.float32)
    x[:100] = np.tile([1.0, -1.0], 50)
    h2 = -(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9))
    explicit = encode_tensor("t", x, TensorEncoding(values="clustered", clusters=2,
                                                    positions="explicit"))
    assert entropy_bound_bits(explicit) == pytest.approx(1000 * h2 + 100 * 1 + 2 * 32)
    mask = x != 0
    implied = encode_tensor("t", x, TensorEncoding(values="clustered", clusters=2,
                                                   positions="implied"), mask=mask, mask_id="m")
    assert entropy_bound_bits(implied) == pytest.approx(100 + 64)  # the mask costs 0 bits
    dense = encode_tensor("t", x, TensorEncoding(values="int8"), seed=0)
    q = np.frombuffer(dense.values.data.data, np.uint8)
    assert entropy_bound_bits(dense) == pytest.approx(empirical_entropy_bits(q) + 40)
    m = encode_mask("m", mask)
    assert entropy_bound_bits(m) == pytest.approx(1000 * h2)


def test_payload_nbytes_counts_every_blob() -> None:
    x = np.random.default_rng(0).normal(size=100).astype(np.float32)
    x[::2] = 0
    enc = encode_tensor("t", x, TensorEncoding(values="clustered", clusters=4,
                                               positions="explicit"))
    expected = (len(enc.positions.blob.data) + len(enc.values.codebook.data)
                + len(enc.values.indices.data))
    assert payload_nbytes(enc) == expected == 13 + 16 + 13
    mask = encode_mask("m", x != 0, zstd=False)
    assert payload_nbytes(mask) == 13


# --- float formats -----------------------------------------------------------------

def test_fp16_decoding_matches_numpy_for_every_finite_bit_pattern() -> None:
    from fedcompression.float_codecs import Fp16Codec
    from fedcompression.payload import Blob, RawValues
    words = np.arange(1 << 16, dtype=np.uint32).astype("<u2")
    finite = words[np.isfinite(words.view("<f2"))]
    payload = RawValues("fp16", Blob(finite.tobytes(), "none", 2 * finite.size))
    got = Fp16Codec().decode(payload, finite.size, tensor="t",
                             limits=fedcompression.DecodeLimits())
    expected = finite.view("<f2").astype(np.float32)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_bf16_rounds_to_nearest_even() -> None:
    ulp = 2.0**-7  # bf16 spacing in [1, 2)
    x = np.array([1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2.0**-20, -(1 + ulp / 2)],
                 dtype=np.float32)
    enc = encode_tensor("t", x, TensorEncoding(values="bf16"))
    got = fedcompression.decode_tensor(enc)
    assert got.tolist() == [1.0, 1 + 2 * ulp, 1 + ulp, -1.0]
