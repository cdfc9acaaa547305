from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Framing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAMING_NONE: _ClassVar[Framing]
    FRAMING_ZSTD: _ClassVar[Framing]

class FloatFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOAT_FORMAT_UNSPECIFIED: _ClassVar[FloatFormat]
    FLOAT_FORMAT_FP32: _ClassVar[FloatFormat]
    FLOAT_FORMAT_FP16: _ClassVar[FloatFormat]
    FLOAT_FORMAT_BF16: _ClassVar[FloatFormat]
FRAMING_NONE: Framing
FRAMING_ZSTD: Framing
FLOAT_FORMAT_UNSPECIFIED: FloatFormat
FLOAT_FORMAT_FP32: FloatFormat
FLOAT_FORMAT_FP16: FloatFormat
FLOAT_FORMAT_BF16: FloatFormat

class Blob(_message.Message):
    __slots__ = ("data", "framing", "raw_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FRAMING_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    framing: Framing
    raw_size: int
    def __init__(self, data: _Optional[bytes] = ..., framing: _Optional[_Union[Framing, str]] = ..., raw_size: _Optional[int] = ...) -> None: ...

class Positions(_message.Message):
    __slots__ = ("bitmap", "delta_varint", "implied_mask_id", "count")
    BITMAP_FIELD_NUMBER: _ClassVar[int]
    DELTA_VARINT_FIELD_NUMBER: _ClassVar[int]
    IMPLIED_MASK_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    bitmap: Blob
    delta_varint: Blob
    implied_mask_id: str
    count: int
    def __init__(self, bitmap: _Optional[_Union[Blob, _Mapping]] = ..., delta_varint: _Optional[_Union[Blob, _Mapping]] = ..., implied_mask_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class RawValues(_message.Message):
    __slots__ = ("format", "data")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    format: FloatFormat
    data: Blob
    def __init__(self, format: _Optional[_Union[FloatFormat, str]] = ..., data: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...

class QuantizedValues(_message.Message):
    __slots__ = ("bits", "scale", "zero_point", "data")
    BITS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ZERO_POINT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    bits: int
    scale: float
    zero_point: int
    data: Blob
    def __init__(self, bits: _Optional[int] = ..., scale: _Optional[float] = ..., zero_point: _Optional[int] = ..., data: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...

class ClusteredValues(_message.Message):
    __slots__ = ("codebook", "index_bits", "indices")
    CODEBOOK_FIELD_NUMBER: _ClassVar[int]
    INDEX_BITS_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    codebook: Blob
    index_bits: int
    indices: Blob
    def __init__(self, codebook: _Optional[_Union[Blob, _Mapping]] = ..., index_bits: _Optional[int] = ..., indices: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...

class Values(_message.Message):
    __slots__ = ("raw", "quantized", "clustered")
    RAW_FIELD_NUMBER: _ClassVar[int]
    QUANTIZED_FIELD_NUMBER: _ClassVar[int]
    CLUSTERED_FIELD_NUMBER: _ClassVar[int]
    raw: RawValues
    quantized: QuantizedValues
    clustered: ClusteredValues
    def __init__(self, raw: _Optional[_Union[RawValues, _Mapping]] = ..., quantized: _Optional[_Union[QuantizedValues, _Mapping]] = ..., clustered: _Optional[_Union[ClusteredValues, _Mapping]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "shape", "positions", "values", "crc32")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    positions: Positions
    values: Values
    crc32: int
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., positions: _Optional[_Union[Positions, _Mapping]] = ..., values: _Optional[_Union[Values, _Mapping]] = ..., crc32: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("tensors", "version", "mask_id")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    version: int
    mask_id: str
    def __init__(self, tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., version: _Optional[int] = ..., mask_id: _Optional[str] = ...) -> None: ...

class MaskTensor(_message.Message):
    __slots__ = ("name", "shape", "kept", "crc32")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    kept: Positions
    crc32: int
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., kept: _Optional[_Union[Positions, _Mapping]] = ..., crc32: _Optional[int] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("mask_id", "tensors")
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    mask_id: str
    tensors: _containers.RepeatedCompositeFieldContainer[MaskTensor]
    def __init__(self, mask_id: _Optional[str] = ..., tensors: _Optional[_Iterable[_Union[MaskTensor, _Mapping]]] = ...) -> None: ...
