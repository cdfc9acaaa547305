"""One contract suite, run against every registered codec (STYLE #5).

Every codec id in the registry gets the same checks: round trip within the codec's
declared tolerance, rejection of bad input with CodecError only, and config semantics
(round trip, equality and hashing by config). A concrete Codec class that is not
registered, or a registered codec without an entry in TOLERANCES, fails the suite.
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

import fedcompression
from fedcompression import CodecError, DecodeLimits, UnknownCodecError, registry
from fedcompression.codec import Codec, PositionCodec, ValueCodec

LIMITS = DecodeLimits()
IDS = fedcompression.registered_ids()


def _exact(x: np.ndarray, y: np.ndarray, payload: object) -> bool:
    return bool(np.array_equal(x, y))


def _relative(rel: float, tiny: float):
    def check(x: np.ndarray, y: np.ndarray, payload: object) -> bool:
        return bool(np.all(np.abs(y.astype(np.float64) - x) <= rel * np.abs(x) + tiny))
    return check


def _within_scale(x: np.ndarray, y: np.ndarray, payload: object) -> bool:
    return bool(np.all(np.abs(y.astype(np.float64) - x) < payload.scale))  # type: ignore[attr-defined]


def _nearest_centroid(x: np.ndarray, y: np.ndarray, payload: object) -> bool:
    codebook = np.unique(y)
    best = np.min(np.abs(x[:, None].astype(np.float64) - codebook[None, :]), axis=1)
    return bool(np.all(np.abs(y.astype(np.float64) - x) <= best + 1e-6))


# Round-trip tolerance of each value codec on values of magnitude ~1 (and exact zeros).
TOLERANCES = {
    "fp32": _exact,
    "fp16": _relative(2.0**-11, 2.0**-25),
    "bf16": _relative(2.0**-8, 1e-38),
    "int8": _within_scale,
    "int4": _within_scale,
    "clustered": _nearest_centroid,
    "bitmap": None, "delta_varint": None, "implied": None,  # positions: always exact
}


def _values(n: int = 257) -> np.ndarray:
    x = np.random.default_rng(1).normal(0.0, 1.0, n).astype(np.float32)
    x[::7] = 0.0
    return x


def _present(n: int = 300) -> np.ndarray:
    present = np.random.default_rng(2).random(n) < 0.3
    present[-1] = True
    return present


def _encode(codec: Codec, n_values: int = 257):
    if isinstance(codec, ValueCodec):
        return codec.encode(_values(n_values), rng=np.random.default_rng(0), tensor="t")
    return codec.encode(_present(), tensor="t", mask_id="m")  # type: ignore[union-attr]


def _decode(codec: Codec, payload: object, n: int, mask: np.ndarray | None = None):
    if isinstance(codec, ValueCodec):
        return codec.decode(payload, n, tensor="t", limits=LIMITS)  # type: ignore[arg-type]
    return codec.decode(payload, n, tensor="t", limits=LIMITS, mask=mask)  # type: ignore[union-attr,arg-type]


def test_every_codec_class_is_registered() -> None:
    def concrete(cls: type) -> list[type]:
        found = [] if inspect.isabstract(cls) else [cls]
        return found + [c for sub in cls.__subclasses__() for c in concrete(sub)]
    classes = {c for c in concrete(Codec)
               if c.__module__.startswith("fedcompression.") and hasattr(c, "codec_id")}
    registered = {registry.codec_class(i) for i in IDS}
    assert classes, "no codec classes found"
    assert classes <= registered, f"unregistered codecs: {classes - registered}"


def test_every_registered_codec_has_a_tolerance() -> None:
    assert set(IDS) == set(TOLERANCES), "add the new codec to TOLERANCES"


def test_register_refuses_silent_replacement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    impostor = type("Impostor", (registry.codec_class("fp32"),), {})
    with pytest.raises(ValueError, match="already registered"):
        fedcompression.register(impostor)
    assert fedcompression.register(registry.codec_class("fp32")) is registry.codec_class("fp32")
    with pytest.raises(ValueError):
        fedcompression.register(int)  # type: ignore[arg-type]


def test_unknown_codec_id_raises_specific_error() -> None:
    with pytest.raises(UnknownCodecError) as info:
        fedcompression.codec_class("zip9")
    assert isinstance(info.value, ValueError) and isinstance(info.value, CodecError)
    with pytest.raises(UnknownCodecError):
        fedcompression.get_codec({"id": "zip9"})
    with pytest.raises(ValueError):
        fedcompression.get_codec({"k": 3})


@pytest.mark.parametrize("codec_id", IDS)
class TestCodecContract:
    def test_handles_its_own_payload_only(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        payload = _encode(codec)
        owners = [i for i in IDS if registry.codec_class(i).handles(payload)]
        assert owners == [codec_id]

    @pytest.mark.parametrize("zstd", [False, True])
    def test_round_trip(self, codec_id: str, zstd: bool) -> None:
        config = {"id": codec_id} if codec_id == "implied" else {"id": codec_id, "zstd": zstd}
        codec = fedcompression.get_codec(config)
        payload = _encode(codec)
        decoder = registry.codec_class(codec_id)()  # decoding never depends on the config
        if isinstance(codec, ValueCodec):
            out = _decode(decoder, payload, 257)
            assert out.dtype == np.float32 and out.shape == (257,)
            assert np.all(np.isfinite(out))
            assert TOLERANCES[codec_id](_values(), out, payload)
            assert np.all(out[_values() == 0] == 0)  # zeros stay exactly zero
        else:
            out = _decode(decoder, payload, 300, mask=_present())
            assert out.dtype == np.int64
            assert np.array_equal(out, np.flatnonzero(_present()))

    @pytest.mark.parametrize("n", [0, 1])
    def test_tiny_inputs(self, codec_id: str, n: int) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        if isinstance(codec, ValueCodec):
            x = np.full(n, 0.5, dtype=np.float32)
            payload = codec.encode(x, rng=np.random.default_rng(0), tensor="t")
            assert np.array_equal(_decode(codec, payload, n), x)
        else:
            present = np.ones(n, dtype=bool)
            payload = codec.encode(present, tensor="t", mask_id="m")  # type: ignore[union-attr]
            assert _decode(codec, payload, n, mask=present).tolist() == list(range(n))

    def test_rejects_wrong_counts(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        payload = _encode(codec)
        # Sizes that change the payload length (or cut off a present position); counts
        # that differ only in padding (e.g. 257 vs 258 nibbles) are indistinguishable.
        wrongs = (255, 259, 257 * 9) if isinstance(codec, ValueCodec) else (299,)
        for wrong in wrongs:
            with pytest.raises(CodecError):
                _decode(codec, payload, wrong, mask=np.ones(wrong, dtype=bool))
        if isinstance(codec, PositionCodec):  # declared count disagrees with the positions
            for count in (payload.count - 1, payload.count + 1, -1, 301):  # type: ignore[union-attr]
                with pytest.raises(CodecError):
                    _decode(codec, dataclasses.replace(payload, count=count), 300,  # type: ignore[arg-type]
                            mask=_present())

    def test_rejects_foreign_payloads(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        for other in IDS:
            if other == codec_id:
                continue
            payload = _encode(fedcompression.get_codec({"id": other}))
            with pytest.raises(CodecError):
                _decode(codec, payload, 300, mask=_present())
        with pytest.raises(CodecError):
            _decode(codec, object(), 3)

    def test_rejects_truncated_blobs(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        payload = _encode(codec)
        n = 257 if isinstance(codec, ValueCodec) else 300
        for field in dataclasses.fields(payload):  # type: ignore[arg-type]
            blob = getattr(payload, field.name)
            if not isinstance(blob, fedcompression.payload.Blob) or not blob.data:
                continue
            cut = dataclasses.replace(blob, data=blob.data[:-1])
            with pytest.raises(CodecError):
                _decode(codec, dataclasses.replace(payload, **{field.name: cut}), n)  # type: ignore[arg-type]

    def test_config_round_trip_and_equality(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        config = codec.get_config()
        assert config["id"] == codec_id
        assert json.loads(json.dumps(config)) == config
        clone = type(codec).from_config(config)
        assert clone == codec and hash(clone) == hash(codec) and clone is not codec
        assert fedcompression.get_codec(config) == codec
        for other in IDS:
            if other != codec_id:
                assert fedcompression.get_codec({"id": other}) != codec
        if "zstd" in config:
            assert fedcompression.get_codec({**config, "zstd": not config["zstd"]}) != codec
        assert repr(codec).startswith(type(codec).__name__)

    def test_bad_configs(self, codec_id: str) -> None:
        cls = fedcompression.codec_class(codec_id)
        with pytest.raises(ValueError):
            cls.from_config({"id": codec_id, "no_such_option": 1})
        other = "fp16" if codec_id != "fp16" else "fp32"
        with pytest.raises(ValueError):
            cls.from_config({"id": other})
        if "zstd" in cls().get_config():
            with pytest.raises(ValueError):
                cls.from_config({"id": codec_id, "zstd": "yes"})

    def test_kind_is_value_or_position(self, codec_id: str) -> None:
        codec = fedcompression.get_codec({"id": codec_id})
        assert isinstance(codec, ValueCodec) != isinstance(codec, PositionCodec)


def test_clustered_parameter_in_config() -> None:
    codec = fedcompression.get_codec({"id": "clustered", "k": 4})
    assert codec.get_config() == {"id": "clustered", "k": 4, "zstd": False}
    assert codec != fedcompression.get_codec({"id": "clustered", "k": 5})
    for bad in (0, 257, 2.0, True):
        with pytest.raises(ValueError):
            fedcompression.get_codec({"id": "clustered", "k": bad})
