"""Fuzzing every decoder: truncated, bit-flipped, random and nonsensical payloads.

A decoder may accept a mutated payload only if it still decodes to a finite float32
tensor of the declared shape; otherwise it must raise CodecError -- never another
exception, never a hang, never an allocation beyond DecodeLimits. Mutations are applied
both with the original CRC (caught by the CRC check) and with a recomputed CRC (which
drives them into the deeper size / range / framing checks).
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
import zlib
from typing import Any

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcompression import (
    CodecError,
    DecodeLimits,
    TensorEncoding,
    decode_mask,
    decode_tensor,
    encode_mask,
    encode_tensor,
    entropy_bound_bits,
)
from fedcompression.payload import (
    BitmapPositions,
    Blob,
    ClusteredValues,
    DeltaVarintPositions,
    EncodedMaskTensor,
    EncodedTensor,
    ImpliedPositions,
    QuantizedValues,
    RawValues,
)

SETTINGS = settings(max_examples=2000, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
LIMITS = DecodeLimits(max_numel=1 << 20, max_raw_bytes=1 << 22)


def _samples() -> list[tuple[Any, np.ndarray | None]]:
    """Valid payloads of every codec (and mask tensors), with the mask they need."""
    rng = np.random.default_rng(3)
    array = (rng.normal(size=(9, 13)) * (rng.random((9, 13)) < 0.3)).astype(np.float32)
    mask = array != 0
    out: list[tuple[Any, np.ndarray | None]] = []
    for values in ("fp32", "fp16", "bf16", "int8", "int4", "clustered"):
        for positions in ("dense", "explicit", "implied"):
            for zstd in (False, True):
                enc = encode_tensor("t", array, TensorEncoding(values=values, clusters=5,
                                    positions=positions, zstd=zstd), mask=mask, mask_id="m")
                out.append((enc, mask))
    sparse = np.zeros(400, dtype=np.float32)
    sparse[[3, 200, 399]] = 1.0  # delta varints
    out.append((encode_tensor("v", sparse, TensorEncoding(positions="explicit")), None))
    out.append((encode_tensor("z", np.zeros(64, np.float32), TensorEncoding(zstd=True)), None))
    out.append((encode_mask("m", mask), None))
    out.append((encode_mask("m", sparse != 0, zstd=False), None))
    return out


SAMPLES = _samples()
INTS = [-1, 0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 255, 256, 257, 1 << 20, 1 << 31, 1 << 63,
        (1 << 64) - 1, 1 << 70]
FLOATS = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 5e-324, 1e-45, 3.4e38, 1e39]
ODD = [None, "", "zstd", "none", "gzip", "fp64", "int8", b"\x00", 1.5, True, (), (-1,),
       (1 << 40, 1 << 40), (0, 1 << 62), Blob(b""), Blob(b"\x01", "none", 1),
       RawValues("fp32", Blob(b"")), ImpliedPositions("m", 0), object()]


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field path of a nested payload dataclass."""
    paths = []
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        paths.append(prefix + (field.name,))
        if dataclasses.is_dataclass(value):
            paths += _paths(value, prefix + (field.name,))
    return paths


def _replace(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _replace(getattr(obj, path[0]), path[1:], value)})


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def _with_fresh_crc(enc: Any) -> Any:
    blobs = [_get(enc, p) for p in _paths(enc) if isinstance(_get(enc, p), Blob)]
    try:
        crc = 0
        for blob in blobs:
            crc = zlib.crc32(blob.data, crc)
    except TypeError:
        return enc
    return dataclasses.replace(enc, crc32=crc)


def _decode_expecting_only_codec_errors(enc: Any, mask: np.ndarray | None) -> None:
    try:
        if isinstance(enc, EncodedMaskTensor):
            out = decode_mask(enc, limits=LIMITS)
            assert out.dtype == np.bool_
        else:
            out = decode_tensor(enc, mask=mask, limits=LIMITS)
            assert out.dtype == np.float32 and np.all(np.isfinite(out))
        assert out.shape == enc.shape
    except CodecError:
        pass
    try:
        entropy_bound_bits(enc, limits=LIMITS)
    except CodecError:
        pass


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Any, np.ndarray | None]:
    enc, mask = draw(st.sampled_from(SAMPLES))
    path = draw(st.sampled_from(_paths(enc)))
    old = _get(enc, path)
    kind = draw(st.sampled_from(["truncate", "flip", "random", "field"]))
    if isinstance(old, bytes) and kind in ("truncate", "flip", "random"):
        if kind == "truncate":
            new: Any = old[: draw(st.integers(0, max(len(old) - 1, 0)))]
        elif kind == "flip" and old:
            bit = draw(st.integers(0, 8 * len(old) - 1))
            new = bytearray(old)
            new[bit // 8] ^= 1 << (bit % 8)
            new = bytes(new)
        else:
            new = draw(st.binary(max_size=64))
    else:
        new = draw(st.sampled_from(INTS + FLOATS + ODD) | st.integers() | st.text(max_size=4))
    enc = _replace(enc, path, new)
    if draw(st.booleans()):
        enc = _with_fresh_crc(enc)
    if mask is not None and draw(st.integers(0, 9)) == 0:
        mask = draw(st.sampled_from([~mask, mask.ravel(), mask.astype(np.int8), mask[:1]]))
    return enc, mask


@SETTINGS
@given(case=mutations())
def test_mutated_payloads_raise_only_codec_error(case: tuple[Any, np.ndarray | None]) -> None:
    _decode_expecting_only_codec_errors(*case)


@st.composite
def random_payloads(draw: st.DrawFn) -> EncodedTensor:
    def blob() -> Blob:
        data = draw(st.binary(max_size=48))
        framing = draw(st.sampled_from(["none", "zstd"]))
        size = len(data) if draw(st.booleans()) else draw(st.integers(0, 1 << 24))
        return Blob(data, framing, size)

    shape = tuple(draw(st.lists(st.integers(0, 12), max_size=3)))
    count = draw(st.integers(0, 200))
    positions = draw(st.sampled_from([
        None, BitmapPositions(blob(), count), DeltaVarintPositions(blob(), count),
        ImpliedPositions("m", count)]))
    values = draw(st.sampled_from([
        RawValues(draw(st.sampled_from(["fp32", "fp16", "bf16"])), blob()),
        QuantizedValues(draw(st.sampled_from([4, 8])), draw(st.floats(width=32)),
                        draw(st.integers(-2, 300)), blob()),
        ClusteredValues(blob(), draw(st.integers(0, 9)), blob())]))
    return _with_fresh_crc(EncodedTensor("r", shape, positions, values, 0))


@SETTINGS
@given(enc=random_payloads(), mask_seed=st.integers(0, 3))
def test_random_payloads_raise_only_codec_error(enc: EncodedTensor, mask_seed: int) -> None:
    mask = np.random.default_rng(mask_seed).random(enc.shape) < 0.5
    _decode_expecting_only_codec_errors(enc, mask)


@pytest.mark.parametrize("case", range(len(SAMPLES)))
def test_every_truncation_and_crc_mismatch_is_rejected(case: int) -> None:
    enc, mask = SAMPLES[case]
    with pytest.raises(CodecError, match="crc32"):
        (decode_mask(dataclasses.replace(enc, crc32=enc.crc32 ^ 1))
         if isinstance(enc, EncodedMaskTensor)
         else decode_tensor(dataclasses.replace(enc, crc32=enc.crc32 ^ 1), mask=mask))
    for path in _paths(enc):
        blob = _get(enc, path)
        if isinstance(blob, Blob) and blob.data:
            for cut in {0, len(blob.data) // 2, len(blob.data) - 1}:
                bad = _with_fresh_crc(_replace(enc, path, dataclasses.replace(
                    blob, data=blob.data[:cut])))
                with pytest.raises(CodecError):
                    (decode_mask(bad) if isinstance(bad, EncodedMaskTensor)
                     else decode_tensor(bad, mask=mask))


def _bomb_frame(n_bytes: int, *, content_size: bool) -> bytes:
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=content_size)
    chunk = bytes(1 << 20)
    obj = cctx.compressobj(size=n_bytes if content_size else -1)
    parts = [obj.compress(chunk) for _ in range(n_bytes >> 20)]
    return b"".join(parts) + obj.flush()


@pytest.mark.parametrize("content_size", [True, False])
def test_zstd_decompression_bomb_is_capped(content_size: bool) -> None:
    """256 MiB of zeros in a ~10 KB frame, declared as a 64-byte fp32 blob."""
    frame = _bomb_frame(256 << 20, content_size=content_size)
    assert len(frame) < 100_000
    values = RawValues("fp32", Blob(frame, "zstd", 64))
    enc = _with_fresh_crc(EncodedTensor("bomb", (16,), None, values, 0))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(CodecError, match="zstd"):
            decode_tensor(enc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 4 << 20


def test_declared_sizes_beyond_limits_are_rejected_before_decompression() -> None:
    frame = zstandard.ZstdCompressor().compress(bytes(1 << 16))
    huge = RawValues("fp32", Blob(frame, "zstd", 1 << 16))
    enc = _with_fresh_crc(EncodedTensor("big", (1 << 14,), None, huge, 0))
    assert decode_tensor(enc).shape == (1 << 14,)
    with pytest.raises(CodecError, match="raw_size .* exceeds"):
        decode_tensor(enc, limits=DecodeLimits(max_raw_bytes=1 << 15))
    with pytest.raises(CodecError, match="numel"):
        decode_tensor(enc, limits=DecodeLimits(max_numel=1 << 13))
    for shape in ((1 << 30, 1 << 30), (-1,), (0, 1 << 62), (2,) * 40):
        with pytest.raises(CodecError):
            decode_tensor(dataclasses.replace(enc, shape=shape))
