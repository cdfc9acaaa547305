"""The value codec a task asks for (``Task.update_encoding``) is binding on the update.

A client that answers an int8 round with fp32 values would send 4x the bytes the operator
budgeted, and one that answers fp32 with int4 would add quantization error the run did not
choose, so :func:`check_update_codec` refuses, before anything is decoded, an update whose
tensors do not use the asked codec's ``Values`` kind:

=============  =====================================================
codec          ``Values`` of every tensor
=============  =====================================================
FP32/16, BF16  ``raw`` with ``format`` FP32 / FP16 / BF16
INT8 / INT4    ``quantized`` with ``bits`` 8 / 4
CLUSTERED      ``clustered`` with at most ``Encoding.clusters`` centroids (k <= clusters)
=============  =====================================================

zstd framing stays the encoder's choice (permitted, never required). Importance scores
(``UpdatePayload.scores``) are not covered: they have their own fixed encoding, and neither
are FedCompress's clustered weights (``UpdatePayload.absolute_tensors``), which
:func:`fedserver.updates.check_absolute` holds to the task's cluster count.
"""

from __future__ import annotations

from fedcore.model_codec import Encoding
from fedcore.pb import tensor_pb2 as tpb
from fedserver.updates import InvalidUpdate

_RAW_FORMATS = {"fp32": tpb.FLOAT_FORMAT_FP32, "fp16": tpb.FLOAT_FORMAT_FP16,
                "bf16": tpb.FLOAT_FORMAT_BF16}
_QUANTIZED_BITS = {"int8": 8, "int4": 4}


def _kind(values: tpb.Values) -> str:
    kind = values.WhichOneof("kind")
    if kind == "raw":
        return {v: k for k, v in _RAW_FORMATS.items()}.get(values.raw.format, "raw")
    if kind == "quantized":
        return f"int{values.quantized.bits}"
    return kind or "no values"


def check_update_codec(delta: tpb.Model, encoding: Encoding, *,
                       absolute: frozenset[str] = frozenset()) -> None:
    """Raise InvalidUpdate naming the first tensor (not in ``absolute``) whose values break
    ``encoding``."""
    want = encoding.values
    for tensor in delta.tensors:
        if tensor.name in absolute:
            continue
        values = tensor.values
        got = _kind(values)
        if want == "clustered":
            if got != "clustered":
                break
            k = values.clustered.codebook.raw_size // 4
            if k > encoding.clusters:
                raise InvalidUpdate(f"tensor {tensor.name!r} has {k} clusters, the task asked "
                                    f"for at most {encoding.clusters}")
        elif got != want:
            break
    else:
        return
    raise InvalidUpdate(f"tensor {tensor.name!r} uses {got} values, the task asked for {want}")
