"""Property-based round trips of encode_tensor / decode_tensor (hypothesis).

Covers float16/32/64 input, 0-d / empty / one-element / non-contiguous / larger shapes,
sparsity 0..100%, every value codec, every positions mode, k in 1..256, with and
without zstd. Expectations: exact for fp32, for positions, and for clustered values
that already have <= k distinct values; fp16 equals numpy's round-to-nearest-even cast;
bf16 within 2**-8 relative; int8/int4 within one quantization step (``scale``); zeros
and pruned elements decode to exactly 0.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedcompression import (
    CodecError,
    TensorEncoding,
    decode_tensor,
    dequantize,
    encode_tensor,
    payload_nbytes,
    quantize,
)
from fedcompression.framing import unframe
from fedcompression.payload import ImpliedPositions

SETTINGS = settings(max_examples=500, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
VALUE_IDS = ["fp32", "fp16", "bf16", "int8", "int4", "clustered"]
MODES = ["dense", "explicit", "implied", "auto"]


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    """Random-normal tensors with a random fraction of exact zeros, in varied layouts."""
    shape = draw(st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
                           st.sampled_from([(1,), (0, 3), (40, 75), (3000,)])))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]) | st.floats(0.0, 1.0))
    scale = draw(st.sampled_from([1e-3, 0.05, 1.0, 300.0]))
    big = tuple(2 * d for d in shape) if draw(st.booleans()) else shape
    base = np.asarray(rng.normal(0.0, scale, big) * (rng.random(big) >= sparsity), dtype=dtype)
    if big != shape:  # a strided, non-contiguous view
        base = base[tuple(slice(None, None, 2) for _ in shape)]
    if base.ndim >= 2 and draw(st.booleans()):
        base = base.T
    return base


def _expected(array: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    a32 = array.astype(np.float32)
    return a32 if mask is None else np.where(mask, a32, np.float32(0))


def _check_values(values: str, expected: np.ndarray, got: np.ndarray, enc, k: int, *,
                  masked: bool) -> None:
    x, y = expected.astype(np.float64), got.astype(np.float64)
    if values != "clustered" or k > 1:  # one centroid cannot keep zeros and nonzeros
        assert np.all(y[x == 0] == 0), "zeros must decode to exactly 0"
    if values == "fp32":
        assert np.array_equal(x, y)
    elif values == "fp16":
        assert np.array_equal(expected.astype(np.float16).astype(np.float32), got)
    elif values == "bf16":
        assert np.all(np.abs(y - x) <= 2.0**-8 * np.abs(x) + 1e-38)
        assert np.all(got.view(np.uint32) & 0xFFFF == 0)
    elif values in ("int8", "int4"):
        assert np.all(np.abs(y - x) < enc.values.scale)
    else:
        _check_clustered(expected, got, enc, k, masked=masked)


def _check_clustered(expected: np.ndarray, got: np.ndarray, enc, k: int, *,
                     masked: bool) -> None:
    sent = expected if enc.positions is None else expected[expected != 0]
    if masked or isinstance(enc.positions, ImpliedPositions):
        sent = None  # the sent set includes masked-in zeros; checked element-wise below
    if sent is not None and np.unique(sent).size <= k:
        assert np.array_equal(expected, got)
    codebook = np.frombuffer(unframe(enc.values.codebook, tensor="t", what="codebook"), "<f4")
    assert codebook.size <= k
    x = expected.astype(np.float64).ravel()
    if x.size and codebook.size:
        nearest = np.min(np.abs(x[:, None] - codebook[None, :].astype(np.float64)), axis=1)
        err = np.abs(got.astype(np.float64).ravel() - x)
        # positions not sent decode to 0 exactly (error |x| = 0 there since x = 0)
        assert np.all(err <= nearest + 1e-6 * np.abs(x) + 1e-30)


@SETTINGS
@example(array=np.array([0.0003455, 0.0, 0.0003304], dtype=np.float16), values="clustered",
         positions="explicit", zstd=False, k=1, use_mask=True, seed=0)
@given(array=tensors(), values=st.sampled_from(VALUE_IDS), positions=st.sampled_from(MODES),
       zstd=st.booleans(), k=st.integers(1, 256), use_mask=st.booleans(),
       seed=st.integers(0, 2**16))
def test_round_trip(array: np.ndarray, values: str, positions: str, zstd: bool, k: int,
                    use_mask: bool, seed: int) -> None:
    mask = None
    if use_mask or positions == "implied":
        mask = np.random.default_rng(seed).random(array.shape) < 0.5
    mask_id = "m7" if positions == "implied" or (positions == "auto" and use_mask) else ""
    encoding = TensorEncoding(values=values, clusters=k, positions=positions, zstd=zstd)
    enc = encode_tensor("t", array, encoding, mask=mask, mask_id=mask_id, seed=seed)
    got = decode_tensor(enc, mask=mask)
    assert got.dtype == np.float32 and got.shape == array.shape and got.flags.c_contiguous
    assert np.all(np.isfinite(got))
    _check_values(values, _expected(array, mask), got, enc, k, masked=mask is not None)
    assert (positions == "dense") == (enc.positions is None) or positions == "auto"
    if mask_id:
        assert isinstance(enc.positions, ImpliedPositions) and enc.positions.mask_id == mask_id


@SETTINGS
@given(array=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=2, max_side=20),
                        elements=st.floats(width=32, allow_nan=False, allow_infinity=False)),
       positions=st.sampled_from(["dense", "explicit"]), zstd=st.booleans())
def test_fp32_is_bit_exact_on_edge_floats(array: np.ndarray, positions: str, zstd: bool) -> None:
    """Subnormals, -0.0 (dense), float32 extremes: fp32 keeps every bit."""
    enc = encode_tensor("t", array, TensorEncoding(positions=positions, zstd=zstd))
    got = decode_tensor(enc)
    if positions == "dense":
        assert np.array_equal(got.view(np.uint32), array.view(np.uint32))
    else:
        assert np.array_equal(got, array)


@SETTINGS
@given(array=hnp.arrays(np.float32, st.integers(0, 50),
                        elements=st.floats(width=32, allow_nan=False, allow_infinity=False)),
       values=st.sampled_from(["int8", "int4", "clustered", "bf16"]), k=st.integers(1, 256))
def test_lossy_codecs_never_overflow_on_edge_floats(array: np.ndarray, values: str, k: int
                                                    ) -> None:
    try:
        enc = encode_tensor("t", array, TensorEncoding(values=values, clusters=k), seed=1)
    except CodecError as exc:  # only bf16 may refuse, when a value rounds to infinity
        assert values == "bf16" and "infinity" in str(exc)
        return
    got = decode_tensor(enc)
    assert np.all(np.isfinite(got))
    if values in ("int8", "int4"):
        assert np.all(np.abs(got.astype(np.float64) - array) < enc.values.scale)


@SETTINGS
@given(sparsity=st.floats(0.0, 1.0), n=st.integers(0, 4000), seed=st.integers(0, 2**16),
       zstd=st.booleans())
def test_explicit_positions_pick_the_smaller_layout(sparsity: float, n: int, seed: int,
                                                     zstd: bool) -> None:
    rng = np.random.default_rng(seed)
    array = (rng.normal(size=n) * (rng.random(n) >= sparsity)).astype(np.float32)
    enc = encode_tensor("t", array, TensorEncoding(positions="explicit", zstd=zstd))
    assert np.array_equal(decode_tensor(enc), array)
    dense = encode_tensor("t", array, TensorEncoding(positions="dense", zstd=zstd))
    auto = encode_tensor("t", array, TensorEncoding(positions="auto", zstd=zstd))
    assert payload_nbytes(auto) == min(payload_nbytes(enc), payload_nbytes(dense))


@settings(max_examples=20, deadline=None)
@given(bits=st.sampled_from([4, 8]), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_stochastic_rounding_is_unbiased(bits: int, fraction: float, seed: int) -> None:
    """A value between two grid points rounds up with probability = its fraction."""
    n = 20000
    grid = np.array([-1.0, 1.0])
    q, scale, zp = quantize(grid, bits, rng=np.random.default_rng(0))
    x = np.float64(scale) * (3 + fraction - zp)  # inside the grid, between steps 3 and 4
    values = np.concatenate([grid, np.full(n, x)])
    q, scale2, zp2 = quantize(values, bits, rng=np.random.default_rng(seed))
    assert (scale2, zp2) == (scale, zp)
    mean = dequantize(q[2:], scale2, zp2).astype(np.float64).mean()
    sigma = scale * 0.5 / np.sqrt(n)  # std of the mean of n Bernoulli steps, at most
    assert abs(mean - x) <= 5 * sigma + 1e-9
