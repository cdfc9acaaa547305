"""Golden wire fixtures (STYLE #6): committed (array, config, encoded fields) per codec.

Every run decodes each fixture under ``tests/fixtures/codecs/`` and compares the result
bit for bit; a registered codec id without a fixture FAILS (fixtures are never created
implicitly). For deterministic codecs the fixture array is also re-encoded and must give
the committed payload again. This is what keeps the wire format stable for clients in
other languages: the JSON holds every field of the ``Tensor`` message, blobs as hex.

To (re)create fixtures deliberately -- only when the wire format is meant to change:

    cd /work/main && PYTHONPATH=. python tests/test_fedcompression_golden.py --write [--force]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fedcompression
from fedcompression import TensorEncoding, decode_mask, decode_tensor, encode_mask, encode_tensor
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
from fedcompression.registry import codec_class

FIXTURES = Path(__file__).parent / "fixtures" / "codecs"
# Codecs whose encoder uses no randomness: re-encoding must reproduce the bytes.
DETERMINISTIC = {"fp32", "fp16", "bf16", "bitmap", "delta_varint", "implied"}


def _cases() -> dict[str, dict[str, Any]]:
    """Fixture name -> how it is generated. Every registered codec id must appear."""
    rng = np.random.default_rng(2024)
    w = rng.normal(0.0, 0.05, (4, 6)).astype(np.float32)
    w[np.abs(w) < 0.03] = 0.0
    sparse = np.zeros((3, 50), np.float32)
    sparse[0, 3], sparse[1, 10], sparse[2, 49] = 0.5, -0.25, 1.0
    clustered = np.array([[0.5, -0.5, 0.0, 0.25], [0.25, 0.5, -0.5, 0.0]], np.float32)
    edge = np.array([1.0, -0.0, 1e-45, 3.0e38, 65504.0, 1.0009765625], np.float32)
    mask = np.abs(w) > 0.05
    return {
        "fp32": {"array": edge, "encoding": TensorEncoding(values="fp32")},
        "fp16": {"array": edge[[0, 1, 4, 5]], "encoding": TensorEncoding(values="fp16")},
        "bf16": {"array": edge, "encoding": TensorEncoding(values="bf16")},
        "int8": {"array": w, "encoding": TensorEncoding(values="int8"), "seed": 7},
        "int4": {"array": w[:, :5], "encoding": TensorEncoding(values="int4"), "seed": 7},
        "clustered": {"array": clustered, "encoding": TensorEncoding(values="clustered",
                                                                   clusters=3)},
        "bitmap": {"array": w, "encoding": TensorEncoding(positions="explicit")},
        "delta_varint": {"array": sparse, "encoding": TensorEncoding(positions="explicit")},
        "implied": {"array": w, "mask": mask, "mask_id": "mask-1",
                        "encoding": TensorEncoding(positions="implied")},
        "clustered_k16_implied_zstd": {
            "array": rng.normal(0, 0.05, 1200).astype(np.float32),
            "mask": rng.random(1200) < 0.1, "mask_id": "mask-2", "seed": 1,
            "encoding": TensorEncoding(values="clustered", clusters=16, positions="implied",
                                    zstd=True)},
        "int8_explicit_zstd": {"array": np.repeat(sparse, 8, axis=1), "seed": 3,
                                   "encoding": TensorEncoding(values="int8", positions="explicit",
                                                           zstd=True)},
        "mask_delta_varint": {"array": sparse != 0, "kind": "mask", "zstd": False},
        "mask_bitmap_zstd": {"array": np.tile(mask, (40, 1)), "kind": "mask", "zstd": True},
    }


# --- JSON <-> payload (language neutral: blobs as hex, every proto field) -------------

def _blob_json(b: Blob) -> dict[str, Any]:
    return {"data_hex": bytes(b.data).hex(), "framing": b.framing, "raw_size": b.raw_size}


def _blob(d: dict[str, Any]) -> Blob:
    return Blob(bytes.fromhex(d["data_hex"]), d["framing"], d["raw_size"])


def _positions_json(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, ImpliedPositions):
        return {"kind": "implied_mask_id", "implied_mask_id": p.mask_id, "count": p.count}
    kind = "bitmap" if isinstance(p, BitmapPositions) else "delta_varint"
    return {"kind": kind, kind: _blob_json(p.blob), "count": p.count}


def _positions(d: dict[str, Any] | None) -> Any:
    if d is None:
        return None
    if d["kind"] == "implied_mask_id":
        return ImpliedPositions(d["implied_mask_id"], d["count"])
    cls = BitmapPositions if d["kind"] == "bitmap" else DeltaVarintPositions
    return cls(_blob(d[d["kind"]]), d["count"])


def _values_json(v: Any) -> dict[str, Any]:
    if isinstance(v, RawValues):
        return {"kind": "raw", "format": v.format, "data": _blob_json(v.data)}
    if isinstance(v, QuantizedValues):
        return {"kind": "quantized", "bits": v.bits, "scale": v.scale,
                "scale_f32_hex": np.float32(v.scale).tobytes().hex(),
                "zero_point": v.zero_point, "data": _blob_json(v.data)}
    return {"kind": "clustered", "codebook": _blob_json(v.codebook),
            "index_bits": v.index_bits, "indices": _blob_json(v.indices)}


def _values(d: dict[str, Any]) -> Any:
    if d["kind"] == "raw":
        return RawValues(d["format"], _blob(d["data"]))
    if d["kind"] == "quantized":
        scale = float(np.frombuffer(bytes.fromhex(d["scale_f32_hex"]), "<f4")[0])
        return QuantizedValues(d["bits"], scale, d["zero_point"], _blob(d["data"]))
    return ClusteredValues(_blob(d["codebook"]), d["index_bits"], _blob(d["indices"]))


def _encoded_json(enc: Any) -> dict[str, Any]:
    if isinstance(enc, EncodedMaskTensor):
        return {"name": enc.name, "shape": list(enc.shape), "kept": _positions_json(enc.kept),
                "crc32": enc.crc32}
    return {"name": enc.name, "shape": list(enc.shape), "positions": _positions_json(
        enc.positions), "values": _values_json(enc.values), "crc32": enc.crc32}


def _encoded(d: dict[str, Any]) -> Any:
    if "kept" in d:
        return EncodedMaskTensor(d["name"], tuple(d["shape"]), _positions(d["kept"]), d["crc32"])
    return EncodedTensor(d["name"], tuple(d["shape"]), _positions(d["positions"]),
                         _values(d["values"]), d["crc32"])


def _array_json(a: np.ndarray) -> dict[str, Any]:
    if a.dtype == np.bool_:  # LSB-first bits, like a bitmap
        return {"dtype": "bool", "shape": list(a.shape),
                "bits_hex": np.packbits(a.ravel(), bitorder="little").tobytes().hex()}
    return {"dtype": "float32", "shape": list(a.shape),
            "le_hex": np.ascontiguousarray(a, "<f4").tobytes().hex()}


def _array(d: dict[str, Any]) -> np.ndarray:
    if d["dtype"] == "bool":
        bits = np.frombuffer(bytes.fromhex(d["bits_hex"]), np.uint8)
        n = int(np.prod(d["shape"]))
        return np.unpackbits(bits, count=n, bitorder="little").astype(bool).reshape(d["shape"])
    return np.frombuffer(bytes.fromhex(d["le_hex"]), "<f4").astype(np.float32).reshape(
        d["shape"])


# --- generation ---------------------------------------------------------------------

def _encode_case(name: str, case: dict[str, Any]) -> Any:
    if case.get("kind") == "mask":
        return encode_mask(name, case["array"], zstd=case["zstd"])
    return encode_tensor(name, case["array"], case["encoding"], mask=case.get("mask"),
                         mask_id=case.get("mask_id", ""), seed=case.get("seed", 0))


def _decode(enc: Any, mask: np.ndarray | None) -> np.ndarray:
    return decode_mask(enc) if isinstance(enc, EncodedMaskTensor) else decode_tensor(enc,
                                                                                    mask=mask)


def build_fixture(name: str, case: dict[str, Any]) -> dict[str, Any]:
    enc = _encode_case(name, case)
    mask = case.get("mask")
    fixture = {
        "fixture": name, "description": "fedprune v1 wire fixture; see tensor.proto",
        "array": _array_json(case["array"]), "mask": None if mask is None else _array_json(mask),
        "mask_id": case.get("mask_id", ""), "seed": case.get("seed", 0),
        "encoding": (None if case.get("kind") == "mask" else
                     {k: getattr(case["encoding"], k) for k in ("values", "clusters",
                                                                "positions", "zstd")}),
        "mask_zstd": case.get("zstd"),
        "encoded": _encoded_json(enc),
        "decoded": _array_json(_decode(enc, mask)),
    }
    return fixture


def write_fixtures(force: bool) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, case in _cases().items():
        path = FIXTURES / f"{name}.json"
        if path.exists() and not force:
            print(f"keep   {path} (use --force to overwrite)")
            continue
        path.write_text(json.dumps(build_fixture(name, case), indent=1) + "\n")
        print(f"wrote  {path}")


# --- tests ----------------------------------------------------------------------------

def _load(name: str) -> dict[str, Any]:
    path = FIXTURES / f"{name}.json"
    if not path.exists():
        pytest.fail(f"missing golden fixture {path}; create it deliberately with "
                    "`PYTHONPATH=. python tests/test_fedcompression_golden.py --write`")
    return json.loads(path.read_text())


def test_every_registered_codec_has_a_fixture() -> None:
    cases = _cases()
    missing = [cid for cid in fedcompression.registered_ids() if cid not in cases]
    assert not missing, f"add golden fixture cases for {missing}"


@pytest.mark.parametrize("name", list(_cases()))
def test_fixture_decodes_bit_exactly(name: str) -> None:
    fixture = _load(name)
    enc = _encoded(fixture["encoded"])
    mask = None if fixture["mask"] is None else _array(fixture["mask"])
    got = _decode(enc, mask)
    expected = _array(fixture["decoded"])
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    case = _cases()[name]
    # zstd output may differ between libzstd versions, so only unframed payloads are
    # required to re-encode byte for byte.
    if name in DETERMINISTIC or (name.startswith("mask_") and not case["zstd"]):
        assert _encoded_json(_encode_case(name, case)) == fixture["encoded"], \
            "the encoder no longer reproduces the committed payload"


@pytest.mark.parametrize("codec_id", fedcompression.registered_ids())
def test_fixture_exercises_its_codec(codec_id: str) -> None:
    enc = _encoded(_load(codec_id)["encoded"])
    payloads = [enc.values] if enc.positions is None else [enc.values, enc.positions]
    assert any(codec_class(codec_id).handles(p) for p in payloads)


def test_fixture_arrays_match_their_generator() -> None:
    """The committed inputs are what the generator would use (guards hand edits)."""
    for name, case in _cases().items():
        fixture = _load(name)
        assert _array(fixture["array"]).tobytes() == np.asarray(
            case["array"], dtype=case["array"].dtype).tobytes()


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit(__doc__)
    write_fixtures(force="--force" in sys.argv)
