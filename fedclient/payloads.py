"""The client's side of the wire, without RPCs: decode a pulled model, encode an update.

Kept apart from the daemon's RPC loop so the in-process emulation (``fedprune.emulation``)
runs exactly the bytes a daemon would send and receive. A client holds at most one mask
(:class:`HeldMask`); the coordinator sends it again only when it changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from fedclient.local_work import TrainOutcome
from fedcore.model_codec import Encoding, decode_mask_message, decode_model, encode_model
from fedcore.pb import coordinator_pb2 as cpb

SCORE_ENCODING = Encoding("fp16", zstd=True)  # scores rank weights: fp16 keeps their order
REPRESENTATION_ENCODING = Encoding("fp32", zstd=True)  # a Gram matrix: eigenvalues need fp32
Params = dict[str, np.ndarray]


class PayloadError(ValueError):
    """A pulled model payload cannot serve the task (drop the task, check in again)."""


@dataclass(frozen=True)
class HeldMask:
    mask_id: str = ""
    masks: dict[str, np.ndarray] | None = None


def decode_model_payload(payload: bytes, task: cpb.Task, *, shapes: Mapping[str, tuple[int, ...]],
                         held: HeldMask) -> tuple[Params, HeldMask]:
    """The task's global model and the mask now held (adopted from the payload if sent)."""
    try:
        msg = cpb.ModelPayload.FromString(payload)
        if msg.HasField("mask"):
            held = HeldMask(*decode_mask_message(msg.mask, expected=shapes))
    except (ValueError, DecodeError) as exc:  # every decoder error is a ValueError
        raise PayloadError(f"bad model payload: {exc}") from None
    if task.mask_id and task.mask_id != held.mask_id:
        raise PayloadError(f"task needs mask {task.mask_id!r}, which the payload lacked")
    masks = held.masks if task.mask_id else None
    try:
        params = decode_model(msg.model, expected=shapes, mask_id=task.mask_id, masks=masks)
    except ValueError as exc:
        raise PayloadError(f"bad model payload: {exc}") from None
    if msg.model.version != task.model_version:
        raise PayloadError(f"pulled version {msg.model.version}, task wants {task.model_version}")
    return params, held


def encoder_seed(*, client_id: str, seed: int, round: int, model_version: int) -> int:
    """Seed of the update encoder's randomness (stochastic rounding, k-means seeding).

    Unique per (client, seed, round, model version): FedAvg relies on the clients' rounding
    errors being independent so they average out; a seed shared by all clients with the same
    ``config.seed`` would make them identical and add up instead. Deterministic, so a
    re-sent update is byte-identical, and independent of the run's random id, so two runs
    with the same seeds are identical. The first 8 bytes of a SHA-256 over an unambiguous
    (JSON) encoding of the four values, as an unsigned 64-bit int.
    """
    key = json.dumps([client_id, seed, round, model_version]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def encode_update(task: cpb.Task, outcome: TrainOutcome, masks: dict[str, np.ndarray] | None,
                  *, client_id: str, seed: int) -> cpb.UpdatePayload:
    """The encoded update; its rounding noise is this client's own (:func:`encoder_seed`)."""
    encoding = Encoding.from_proto(task.update_encoding)
    values = {n: outcome.weights.get(n, d) for n, d in outcome.delta.items()}
    clustered = Encoding("clustered", max(int(task.train.clusters), 1), encoding.zstd)
    payload = cpb.UpdatePayload(delta=encode_model(
        values, encoding=encoding, version=task.model_version, mask_id=task.mask_id,
        masks=masks, seed=encoder_seed(client_id=client_id, seed=seed, round=int(task.round),
                                       model_version=int(task.model_version)),
        per_tensor={n: clustered for n in outcome.weights}),
        absolute_tensors=[n for n in outcome.delta if n in outcome.weights])
    if outcome.representation is not None:
        payload.representation.CopyFrom(encode_model(
            outcome.representation, encoding=REPRESENTATION_ENCODING,
            version=task.model_version))
    if outcome.scores is not None:
        payload.scores.CopyFrom(encode_model(outcome.scores, encoding=SCORE_ENCODING,
                                             version=task.model_version))
    return payload
