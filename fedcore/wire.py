"""Field-for-field mapping between fedcompression payloads and protobuf messages.

The codecs (``fedcompression``) work on plain dataclasses; this module is the only place
that knows both those dataclasses and the generated ``tensor_pb2`` messages. Mapping from
protobuf validates the *structure* (which oneof is set, enum values in range, shape
dimensions) and raises :class:`fedcompression.CodecError`; the codecs validate the
*content* (sizes, CRC, ranges) when they decode.
"""

from __future__ import annotations

from fedcompression.errors import CodecError
from fedcompression.payload import (
    BitmapPositions,
    Blob,
    ClusteredValues,
    DeltaVarintPositions,
    EncodedMaskTensor,
    EncodedTensor,
    ImpliedPositions,
    Positions,
    QuantizedValues,
    RawValues,
    Values,
)
from fedcore.pb import tensor_pb2 as pb

MAX_DIMS = 8

_FRAMING_TO_PB = {"none": pb.FRAMING_NONE, "zstd": pb.FRAMING_ZSTD}
_FRAMING_FROM_PB = {v: k for k, v in _FRAMING_TO_PB.items()}
_FLOAT_TO_PB = {"fp32": pb.FLOAT_FORMAT_FP32, "fp16": pb.FLOAT_FORMAT_FP16, "bf16": pb.FLOAT_FORMAT_BF16}
_FLOAT_FROM_PB = {v: k for k, v in _FLOAT_TO_PB.items()}


def _blob_to_pb(blob: Blob) -> pb.Blob:
    return pb.Blob(data=blob.data, framing=_FRAMING_TO_PB[blob.framing], raw_size=blob.raw_size)


def _blob_from_pb(name: str, msg: pb.Blob) -> Blob:
    framing = _FRAMING_FROM_PB.get(msg.framing)
    if framing is None:
        raise CodecError(name, f"unknown blob framing {msg.framing}")
    return Blob(data=bytes(msg.data), framing=framing, raw_size=int(msg.raw_size))


def _positions_to_pb(positions: Positions) -> pb.Positions:
    if isinstance(positions, BitmapPositions):
        return pb.Positions(bitmap=_blob_to_pb(positions.blob), count=positions.count)
    if isinstance(positions, DeltaVarintPositions):
        return pb.Positions(delta_varint=_blob_to_pb(positions.blob), count=positions.count)
    return pb.Positions(implied_mask_id=positions.mask_id, count=positions.count)


def _positions_from_pb(name: str, msg: pb.Positions) -> Positions:
    kind = msg.WhichOneof("kind")
    if kind == "bitmap":
        return BitmapPositions(blob=_blob_from_pb(name, msg.bitmap), count=int(msg.count))
    if kind == "delta_varint":
        return DeltaVarintPositions(blob=_blob_from_pb(name, msg.delta_varint), count=int(msg.count))
    if kind == "implied_mask_id":
        if not msg.implied_mask_id:
            raise CodecError(name, "implied positions name an empty mask id")
        return ImpliedPositions(mask_id=msg.implied_mask_id, count=int(msg.count))
    raise CodecError(name, "positions message sets no kind")


def _values_to_pb(values: Values) -> pb.Values:
    if isinstance(values, RawValues):
        return pb.Values(raw=pb.RawValues(format=_FLOAT_TO_PB[values.format], data=_blob_to_pb(values.data)))
    if isinstance(values, QuantizedValues):
        return pb.Values(quantized=pb.QuantizedValues(
            bits=values.bits, scale=values.scale, zero_point=values.zero_point,
            data=_blob_to_pb(values.data)))
    return pb.Values(clustered=pb.ClusteredValues(
        codebook=_blob_to_pb(values.codebook), index_bits=values.index_bits,
        indices=_blob_to_pb(values.indices)))


def _values_from_pb(name: str, msg: pb.Values) -> Values:
    kind = msg.WhichOneof("kind")
    if kind == "raw":
        fmt = _FLOAT_FROM_PB.get(msg.raw.format)
        if fmt is None:
            raise CodecError(name, f"unknown float format {msg.raw.format}")
        return RawValues(format=fmt, data=_blob_from_pb(name, msg.raw.data))
    if kind == "quantized":
        q = msg.quantized
        return QuantizedValues(bits=int(q.bits), scale=float(q.scale), zero_point=int(q.zero_point),
                               data=_blob_from_pb(name, q.data))
    if kind == "clustered":
        c = msg.clustered
        return ClusteredValues(codebook=_blob_from_pb(name, c.codebook), index_bits=int(c.index_bits),
                               indices=_blob_from_pb(name, c.indices))
    raise CodecError(name, "values message sets no kind")


def _shape_from_pb(name: str, dims: list[int]) -> tuple[int, ...]:
    if len(dims) > MAX_DIMS:
        raise CodecError(name, f"{len(dims)} dimensions exceed the limit of {MAX_DIMS}")
    return tuple(int(d) for d in dims)


def tensor_to_proto(enc: EncodedTensor) -> pb.Tensor:
    msg = pb.Tensor(name=enc.name, shape=list(enc.shape), values=_values_to_pb(enc.values),
                    crc32=enc.crc32)
    if enc.positions is not None:
        msg.positions.CopyFrom(_positions_to_pb(enc.positions))
    return msg


def tensor_from_proto(msg: pb.Tensor) -> EncodedTensor:
    name = msg.name
    if not msg.HasField("values"):
        raise CodecError(name, "tensor has no values")
    positions = _positions_from_pb(name, msg.positions) if msg.HasField("positions") else None
    return EncodedTensor(name=name, shape=_shape_from_pb(name, list(msg.shape)), positions=positions,
                         values=_values_from_pb(name, msg.values), crc32=int(msg.crc32))


def mask_tensor_to_proto(enc: EncodedMaskTensor) -> pb.MaskTensor:
    return pb.MaskTensor(name=enc.name, shape=list(enc.shape), kept=_positions_to_pb(enc.kept),
                         crc32=enc.crc32)


def mask_tensor_from_proto(msg: pb.MaskTensor) -> EncodedMaskTensor:
    name = msg.name
    kept = _positions_from_pb(name, msg.kept)
    if isinstance(kept, ImpliedPositions):
        raise CodecError(name, "a mask cannot imply its positions from another mask")
    return EncodedMaskTensor(name=name, shape=_shape_from_pb(name, list(msg.shape)), kept=kept,
                             crc32=int(msg.crc32))
