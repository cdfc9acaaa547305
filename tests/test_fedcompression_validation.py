"""Known-answer tests of each decoder check: every listed corruption is a CodecError.

The fuzz tests show that *some* check catches random damage; these pin down that each
documented check exists: counts, sizes, CRC, bit widths, codebook, scale/zero point,
index ranges and order, varint canonical form and trailing bytes, bitmap padding,
framing / format enums, non-finite values, implied masks.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import pytest
import zstandard

from fedcompression import (
    CodecError,
    TensorEncoding,
    decode_mask,
    decode_tensor,
    encode_mask,
    encode_tensor,
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


def _tensor(shape, positions, values) -> EncodedTensor:
    """An EncodedTensor with a correct CRC (so only the intended defect is wrong)."""
    blobs = [getattr(positions, "blob", None)]
    blobs += [getattr(values, n, None) for n in ("codebook", "data", "indices")]
    crc = 0
    for b in blobs:
        if b is not None:
            crc = zlib.crc32(b.data, crc)
    return EncodedTensor("t", tuple(shape), positions, values, crc)


def _raw(data: bytes, fmt: str = "fp32") -> RawValues:
    return RawValues(fmt, Blob(data, "none", len(data)))


def _blob(data: bytes) -> Blob:
    return Blob(data, "none", len(data))


def _rejects(enc, match: str, mask=None) -> None:
    with pytest.raises(CodecError, match=match):
        if isinstance(enc, EncodedMaskTensor):
            decode_mask(enc)
        else:
            decode_tensor(enc, mask=mask)


ONE = struct.pack("<f", 1.0)


def test_valid_hand_built_tensor_decodes() -> None:
    varint = DeltaVarintPositions(_blob(bytes([1, 0, 2])), 3)  # indices 1, 2, 5
    enc = _tensor((2, 3), varint, _raw(ONE * 3))
    assert decode_tensor(enc).tolist() == [[0, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("data, count, match", [
    (bytes([0x80, 0x00]), 1, "overlong"),            # 0 encoded in two bytes
    (bytes([1, 0, 2, 7]), 3, "expected 3"),          # trailing varint
    (bytes([1, 0, 0x82]), 3, "truncated"),           # last varint has its high bit set
    (bytes([1, 0, 9]), 3, ">= numel|position index"),  # runs past numel
    (bytes([6]), 1, ">= numel"),                     # first index == numel
    (bytes([0xFF] * 10 + [0x01]), 1, "raw_size|longer than 10"),
])
def test_delta_varint_checks(data: bytes, count: int, match: str) -> None:
    enc = _tensor((6,), DeltaVarintPositions(_blob(data), count), _raw(ONE * count))
    _rejects(enc, match)


def test_varint_longer_than_ten_bytes() -> None:
    data = bytes([0x80] * 10 + [0x01])
    enc = _tensor((6,), DeltaVarintPositions(_blob(data), 2), _raw(ONE * 2))
    _rejects(enc, "longer than 10|expected 2")


def test_bitmap_checks() -> None:
    good = _tensor((10,), BitmapPositions(_blob(bytes([0b11, 0])), 2), _raw(ONE * 2))
    assert decode_tensor(good)[:3].tolist() == [1, 1, 0]
    _rejects(_tensor((10,), BitmapPositions(_blob(bytes([0b11, 0b100])), 2),
                     _raw(ONE * 2)), "padding")
    _rejects(_tensor((10,), BitmapPositions(_blob(bytes([0b111, 0])), 2), _raw(ONE * 2)),
             "set bits")
    _rejects(_tensor((10,), BitmapPositions(_blob(bytes([0b11])), 2), _raw(ONE * 2)),
             "raw_size")
    _rejects(_tensor((10,), BitmapPositions(_blob(bytes([0b11, 0])), 11), _raw(ONE * 2)),
             "count")


def test_blob_framing_checks() -> None:
    _rejects(_tensor((1,), None, RawValues("fp32", Blob(ONE, "gzip", 4))), "framing")
    _rejects(_tensor((1,), None, RawValues("fp32", Blob(ONE, "none", 5))), "raw_size")
    _rejects(_tensor((1,), None, RawValues("fp32", Blob(ONE, "zstd", 4))), "zstd")
    frame = zstandard.ZstdCompressor().compress(ONE)
    assert decode_tensor(_tensor((1,), None, RawValues("fp32", Blob(frame, "zstd", 4)))) == 1
    _rejects(_tensor((1,), None, RawValues("fp32", Blob(frame + b"\0", "zstd", 4))), "zstd")
    _rejects(_tensor((1,), None, RawValues("fp32", Blob(frame, "zstd", -4))), "raw_size")


def test_float_format_and_finiteness_checks() -> None:
    _rejects(_tensor((1,), None, _raw(ONE, "fp64")), "no registered codec")
    _rejects(_tensor((1,), None, _raw(struct.pack("<f", float("nan")))), "finite")
    _rejects(_tensor((1,), None, _raw(struct.pack("<e", float("inf")), "fp16")), "finite")
    _rejects(_tensor((1,), None, _raw(bytes([0x80, 0x7F]), "bf16")), "finite")  # +inf


@pytest.mark.parametrize("bits, scale, zp, data, match", [
    (3, 1.0, 0, b"\x01", "no registered codec"),
    (8, float("nan"), 0, b"\x01", "scale"),
    (8, float("inf"), 0, b"\x01", "scale"),
    (8, 1e39, 0, b"\x01", "scale"),
    (8, -1.0, 0, b"\x01", "scale"),
    (8, 0.0, 0, b"\x01", "scale"),
    (8, 1.0, 256, b"\x01", "zero_point"),
    (8, 1.0, -1, b"\x01", "zero_point"),
    (4, 1.0, 16, b"\x01", "zero_point"),
    (4, 1.0, 0, b"\x10", "padding"),            # 1 value: the high nibble must be 0
    (8, 3e38, 0, b"\xff", "overflows"),
])
def test_quantized_checks(bits: int, scale: float, zp: int, data: bytes, match: str) -> None:
    enc = _tensor((1,), None, QuantizedValues(bits, scale, zp, _blob(data)))
    _rejects(enc, match)


def test_quantized_scale_may_be_anything_finite_when_all_q_equal_zero_point() -> None:
    enc = _tensor((2,), None, QuantizedValues(8, 0.0, 7, _blob(b"\x07\x07")))
    assert decode_tensor(enc).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("codebook, index_bits, indices, match", [
    (ONE * 3, 2, bytes([0b11]), ">= codebook size"),  # index 3 with k = 3
    (ONE * 3, 1, bytes([0b1]), "index_bits"),
    (ONE * 2, 2, bytes([0b1]), "index_bits"),
    (b"", 0, b"", "raw_size"),                        # k = 0
    (ONE * 257, 9, b"\0\0", "raw_size"),              # k = 257
    (ONE + b"\0", 0, b"", "4\\*k"),
    (struct.pack("<2f", 1.0, float("inf")), 1, b"\x01", "codebook"),
    (ONE * 2, 1, bytes([0b10]), "padding"),
])
def test_clustered_checks(codebook: bytes, index_bits: int, indices: bytes, match: str) -> None:
    enc = _tensor((1,), None, ClusteredValues(_blob(codebook), index_bits, _blob(indices)))
    _rejects(enc, match)


def test_implied_mask_checks() -> None:
    enc = _tensor((2, 2), ImpliedPositions("m", 2), _raw(ONE * 2))
    mask = np.array([[True, False], [False, True]])
    assert decode_tensor(enc, mask=mask).tolist() == [[1, 0], [0, 1]]
    _rejects(enc, "pass that mask")
    _rejects(enc, "shape", mask=mask.ravel())
    _rejects(enc, "bool", mask=mask.astype(np.uint8))
    _rejects(enc, "keeps 1", mask=np.array([[True, False], [False, False]]))
    _rejects(dataclasses.replace(enc, positions=ImpliedPositions("", 2)), "mask_id", mask=mask)


def test_header_checks() -> None:
    enc = _tensor((1,), None, _raw(ONE))
    _rejects(dataclasses.replace(enc, crc32=enc.crc32 ^ 0x100), "crc32")
    _rejects(dataclasses.replace(enc, crc32=-1), "crc32")
    _rejects(dataclasses.replace(enc, shape=[1]), "tuple")
    _rejects(dataclasses.replace(enc, shape=(1.0,)), "not an int")
    _rejects(dataclasses.replace(enc, positions=_raw(ONE)), "positions hold")
    _rejects(dataclasses.replace(enc, values=BitmapPositions(_blob(b"\x01"), 1)), "values hold")
    with pytest.raises(CodecError):
        decode_tensor("not a tensor")  # type: ignore[arg-type]


def test_mask_tensor_checks() -> None:
    enc = encode_mask("m", np.array([True, False, True]), zstd=False)
    assert decode_mask(enc).tolist() == [True, False, True]
    _rejects(dataclasses.replace(enc, crc32=enc.crc32 ^ 1), "crc32")
    _rejects(dataclasses.replace(enc, kept=ImpliedPositions("x", 2)), "bitmap or delta")
    _rejects(dataclasses.replace(enc, shape=(2,)), "raw_size|padding|set bits")


def test_encoder_argument_checks() -> None:
    enc = TensorEncoding()
    for bad in (np.array([1.0, np.nan]), np.array([np.inf]), np.array([1e300])):
        with pytest.raises(CodecError, match="non-finite"):
            encode_tensor("t", bad, enc)
    with pytest.raises(CodecError, match="floating"):
        encode_tensor("t", np.array([1, 2]), enc)
    with pytest.raises(CodecError, match="numpy array"):
        encode_tensor("t", [1.0], enc)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="fp16 range"):
        encode_tensor("t", np.array([7e4]), TensorEncoding(values="fp16"))
    with pytest.raises(CodecError, match="infinity"):
        encode_tensor("t", np.array([3.4e38], np.float32), TensorEncoding(values="bf16"))
    with pytest.raises(CodecError, match="mask shape"):
        encode_tensor("t", np.ones(3), TensorEncoding(positions="explicit"),
                      mask=np.ones(2, bool))
    with pytest.raises(CodecError, match="need the mask"):
        encode_tensor("t", np.ones(3), TensorEncoding(positions="implied"), mask_id="m")
    with pytest.raises(CodecError, match="mask_id"):
        encode_tensor("t", np.ones(3), TensorEncoding(positions="implied"),
                      mask=np.ones(3, bool))
    with pytest.raises(CodecError, match="TensorEncoding"):
        encode_tensor("t", np.ones(3), "fp32")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, bad", [
    ({"values": "int3"}, "values"), ({"values": "bitmap"}, "values"),
    ({"clusters": 0}, "clusters"), ({"clusters": 257}, "clusters"),
    ({"clusters": 4.0}, "clusters"), ({"positions": "sparse"}, "positions"),
    ({"zstd": 1}, "zstd"),
])
def test_tensor_encoding_names_the_bad_argument(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=f"TensorEncoding.{bad}"):
        TensorEncoding(**kwargs)


@pytest.mark.parametrize("level", [-5, 1, 3, 19])
@pytest.mark.parametrize("checksum, content_size", [(False, True), (True, False)])
@pytest.mark.parametrize("n", [1, 1000, 300_000])
def test_zstd_frames_from_other_encoder_settings_decode(level: int, checksum: bool,
                                                       content_size: bool, n: int) -> None:
    """Any single standard zstd frame is accepted: multi-block, checksummed, no size."""
    values = np.random.default_rng(n).normal(size=n).astype(np.float32)
    values[::3] = 0.0
    raw = values.tobytes()
    frame = zstandard.ZstdCompressor(level=level, write_checksum=checksum,
                                     write_content_size=content_size).compress(raw)
    enc = _tensor((n,), None, RawValues("fp32", Blob(frame, "zstd", len(raw))))
    assert np.array_equal(decode_tensor(enc), values)
    for tail in (b"\0", frame[:3], zstandard.ZstdCompressor().compress(b"x"),
                 bytes.fromhex("502a4d1800000000")):  # empty skippable frame
        _rejects(_tensor((n,), None, RawValues("fp32", Blob(frame + tail, "zstd", len(raw)))),
                 "after the zstd frame")
