"""The broadcast model as it goes on the wire: a serialized ``ModelPayload``.

Encoded under the round's training mask (positions implied, no index bytes) with the
configured downlink codec; the mask itself is attached only for a client that does not hold
it yet. One function, shared by the coordinator and the in-process emulation, so both send
the same bytes.
"""

from __future__ import annotations

from fedcore.model_codec import Encoding, encode_mask_message, encode_model
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.weight_clustering import clustered_names
from fedserver.config import WireConfig
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState


def encode_model_payload(model: ModelState, instr: RoundInstructions, *, wire: WireConfig,
                         include_mask: bool) -> bytes:
    """With ``instr.downlink_clusters = k`` (FedCompress: the model was distilled into a
    clustered student), the tensors clustered at ``k`` go as codebook + packed indices
    (lossless: each holds at most ``k`` values) and the others with ``wire.downlink``."""
    k = instr.downlink_clusters
    clustered = Encoding("clustered", k, wire.zstd) if k > 0 else None
    shapes = {n: tuple(a.shape) for n, a in model.params.items()}
    per_tensor = {n: clustered for n in clustered_names(shapes, clusters=k, masks=instr.masks)
                  } if clustered is not None else {}
    encoded = encode_model(model.params, encoding=Encoding(wire.downlink, wire.clusters,
                                                           wire.zstd),
                           version=model.version, mask_id=instr.mask_id, masks=instr.masks,
                           per_tensor=per_tensor)
    payload = cpb.ModelPayload(model=encoded)
    if include_mask and instr.masks is not None:
        payload.mask.CopyFrom(encode_mask_message(instr.mask_id, instr.masks))
    return payload.SerializeToString()
