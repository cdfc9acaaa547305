"""Whole models and masks <-> protobuf, on top of the per-tensor codecs.

Both directions of the protocol use these functions: the coordinator encodes the global
model and decodes updates; the client does the reverse. Decoding checks, before any tensor
is decoded, that the message matches what the receiver expects (tensor names in order,
shapes, mask id), so a wrong-shape or wrong-mask payload never reaches an aggregate:

* :class:`ModelMismatchError` — names, order or shapes differ from the expected model;
* :class:`MaskMismatchError` — the payload refers to a mask the receiver does not hold;
* :class:`fedcompression.CodecError` — a tensor payload is corrupt or out of limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedcompression import (
    DecodeLimits,
    TensorEncoding,
    decode_mask,
    decode_tensor,
    encode_mask,
    encode_tensor,
)
from fedcompression.errors import CodecError
from fedcore import wire
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import tensor_pb2 as pb

Params = Mapping[str, np.ndarray]
Masks = Mapping[str, np.ndarray]

_VALUE_CODECS = {
    cpb.VALUE_CODEC_FP32: "fp32",
    cpb.VALUE_CODEC_FP16: "fp16",
    cpb.VALUE_CODEC_BF16: "bf16",
    cpb.VALUE_CODEC_INT8: "int8",
    cpb.VALUE_CODEC_INT4: "int4",
    cpb.VALUE_CODEC_CLUSTERED: "clustered",
}
VALUE_CODEC_BY_NAME = {v: k for k, v in _VALUE_CODECS.items()}


class ModelMismatchError(ValueError):
    """A model message does not have the expected tensor names, order or shapes."""


class MaskMismatchError(ValueError):
    """A model message refers to a mask other than the one the receiver holds."""


@dataclass(frozen=True)
class Encoding:
    """How tensors go on the wire: the value codec, cluster count and zstd framing."""

    values: str = "fp32"
    clusters: int = 16
    zstd: bool = False

    def __post_init__(self) -> None:
        if self.values not in VALUE_CODEC_BY_NAME:
            raise ValueError(f"encoding.values must be one of {sorted(VALUE_CODEC_BY_NAME)}, "
                             f"got {self.values!r}")
        if not 1 <= self.clusters <= 256:
            raise ValueError(f"encoding.clusters must be in 1..256, got {self.clusters}")

    def to_proto(self) -> cpb.Encoding:
        return cpb.Encoding(values=VALUE_CODEC_BY_NAME[self.values], clusters=self.clusters,
                            zstd=self.zstd)

    @classmethod
    def from_proto(cls, msg: cpb.Encoding) -> Encoding:
        name = _VALUE_CODECS.get(msg.values)
        if name is None:
            raise ValueError(f"unknown value codec {msg.values}")
        return cls(values=name, clusters=msg.clusters or 16, zstd=msg.zstd)

    def tensor_encoding(self, *, masked: bool) -> TensorEncoding:
        return TensorEncoding(values=self.values, clusters=self.clusters,
                              positions="implied" if masked else "dense", zstd=self.zstd)


def encode_model(params: Params, *, encoding: Encoding, version: int, mask_id: str = "",
                 masks: Masks | None = None, seed: int = 0,
                 per_tensor: Mapping[str, Encoding] | None = None) -> pb.Model:
    """Encode ``params`` in order; tensors covered by ``masks`` carry implied positions.

    ``per_tensor`` overrides ``encoding`` for the tensors it names (FedCompress sends its
    clustered tensors as codebook + indices and the rest, e.g. biases, as floats)."""
    if masks and not mask_id:
        raise ValueError("masks given without a mask_id")
    unknown = set(per_tensor or {}) - set(params)
    if unknown:
        raise ValueError(f"per_tensor names tensors the model lacks: {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    tensors = []
    for name, array in params.items():
        mask = masks.get(name) if masks else None
        chosen = (per_tensor or {}).get(name, encoding)
        enc = encode_tensor(name, array, chosen.tensor_encoding(masked=mask is not None),
                            mask=mask, mask_id=mask_id if mask is not None else "", rng=rng,
                            seed=seed)
        tensors.append(wire.tensor_to_proto(enc))
    return pb.Model(tensors=tensors, version=version, mask_id=mask_id)


def check_model_layout(msg: pb.Model, expected: Mapping[str, tuple[int, ...]]) -> None:
    """Raise ModelMismatchError unless names, order and shapes equal ``expected``."""
    names = [t.name for t in msg.tensors]
    if names != list(expected):
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        raise ModelMismatchError(
            f"tensor names differ from the model: missing {missing}, unexpected {extra}"
            if missing or extra else "tensors are not in the model's order")
    for tensor in msg.tensors:
        shape = tuple(int(d) for d in tensor.shape)
        if shape != tuple(expected[tensor.name]):
            raise ModelMismatchError(
                f"tensor {tensor.name!r} has shape {shape}, expected {tuple(expected[tensor.name])}")


def decode_model(msg: pb.Model, *, expected: Mapping[str, tuple[int, ...]] | None = None,
                 mask_id: str = "", masks: Masks | None = None,
                 limits: DecodeLimits = DecodeLimits()) -> dict[str, np.ndarray]:
    """Decode every tensor after checking layout and mask id; returns float32 arrays."""
    if expected is not None:
        check_model_layout(msg, expected)
    if msg.mask_id != mask_id:
        raise MaskMismatchError(f"payload uses mask {msg.mask_id!r}, expected {mask_id!r}")
    out: dict[str, np.ndarray] = {}
    for tensor in msg.tensors:
        enc = wire.tensor_from_proto(tensor)
        if enc.name in out:
            raise ModelMismatchError(f"tensor {enc.name!r} appears twice")
        mask = masks.get(enc.name) if masks else None
        implied = getattr(enc.positions, "mask_id", None)
        if implied is not None and (implied != mask_id or mask is None):
            raise MaskMismatchError(
                f"tensor {enc.name!r} implies mask {implied!r}, which the receiver does not hold")
        out[enc.name] = decode_tensor(enc, mask=mask, limits=limits)
    return out


def encode_mask_message(mask_id: str, masks: Masks) -> pb.Mask:
    return pb.Mask(mask_id=mask_id, tensors=[
        wire.mask_tensor_to_proto(encode_mask(name, mask)) for name, mask in masks.items()])


def decode_mask_message(msg: pb.Mask, *, expected: Mapping[str, tuple[int, ...]] | None = None,
                        limits: DecodeLimits = DecodeLimits()) -> tuple[str, dict[str, np.ndarray]]:
    """Decode a mask; tensors must exist in ``expected`` with the same shape."""
    if not msg.mask_id:
        raise CodecError("<mask>", "mask message has an empty mask_id")
    masks: dict[str, np.ndarray] = {}
    for tensor in msg.tensors:
        if expected is not None and (tensor.name not in expected
                                     or tuple(tensor.shape) != tuple(expected[tensor.name])):
            raise ModelMismatchError(f"mask tensor {tensor.name!r} does not match the model")
        if tensor.name in masks:
            raise ModelMismatchError(f"mask tensor {tensor.name!r} appears twice")
        masks[tensor.name] = decode_mask(wire.mask_tensor_from_proto(tensor), limits=limits)
    return msg.mask_id, masks


def model_digest(params: Params) -> str:
    """SHA-256 over names, shapes and float32 bytes: identifies a global model's content."""
    h = hashlib.sha256()
    for name, array in params.items():
        a = np.ascontiguousarray(array, dtype="<f4")
        h.update(name.encode() + b"\0" + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()
