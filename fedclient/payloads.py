"""The client's side of the wire, without RPCs: decode a pulled model, encode an update.

Kept apart from the daemon's RPC loop so the in-process emulation (``fedprune.emulation``)
runs exactly the bytes a daemon would send and receive. A client holds at most one mask
and one global model (:class:`HeldState`) and declares them when it asks for work, so the
coordinator sends only what it lacks: a model delta or nothing instead of the model, the
removed positions instead of the mask. Whatever the payload's form, the model the client
ends with must match the digest the payload (and the task) name; a payload that does not
apply (wrong base, bad delta, digest mismatch) raises :class:`PayloadError` and the
daemon pulls the full payload once, declaring nothing. It never trains on a model it
could not verify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from google.protobuf.message import DecodeError

from fedclient.local_work import TrainOutcome
from fedcore.model_codec import Encoding, decode_mask_message, decode_model, encode_model
from fedcore.model_deltas import apply_mask_delta_message, apply_model_delta, model_sha256
from fedcore.pb import coordinator_pb2 as cpb

SCORE_ENCODING = Encoding("fp16", zstd=True)  # scores rank weights: fp16 keeps their order
REPRESENTATION_ENCODING = Encoding("fp32", zstd=True)  # a Gram matrix: eigenvalues need fp32
Params = dict[str, np.ndarray]


class PayloadError(ValueError):
    """A pulled model payload cannot serve the task (drop the task, check in again)."""


@dataclass(frozen=True)
class HeldState:
    """The mask and the global model this client holds (the model as pulled or built from
    the seeded initialisation, never its locally trained weights)."""

    mask_id: str = ""
    masks: dict[str, np.ndarray] | None = None
    model_version: int = 0
    model_digest: bytes = b""
    params: Params | None = None

    def declared(self) -> dict[str, object]:
        """The ``held_*`` fields of RoundRequest / PullModelRequest."""
        return {"held_mask_id": self.mask_id, "held_model_version": self.model_version,
                "held_model_digest": self.model_digest}

    def declares_nothing(self) -> bool:
        return not self.mask_id and not self.model_digest

    def holds(self, task: cpb.Task) -> bool:
        """True when the task needs no payload: its model (by digest) and its mask."""
        digests = {bytes(task.model_digest)} | ({bytes(task.init_digest)}
                                               if task.model_version == 0 else set())
        return (self.params is not None and self.model_version == task.model_version
                and self.model_digest in digests - {b""}
                and (not task.mask_id or task.mask_id == self.mask_id))

    def with_model(self, version: int, params: Params) -> HeldState:
        return replace(self, model_version=version, model_digest=model_sha256(params),
                       params=params)

    def without_model(self) -> HeldState:
        return replace(self, model_version=0, model_digest=b"", params=None)


def decode_model_payload(payload: bytes | memoryview, task: cpb.Task, *,
                         shapes: Mapping[str, tuple[int, ...]],
                         held: HeldState) -> tuple[Params, HeldState]:
    """The task's global model and what is now held (mask and model adopted from the
    payload); raises PayloadError for anything that does not verify."""
    try:
        msg = cpb.ModelPayload.FromString(payload)
        return _decode(msg, task, shapes=shapes, held=held)
    except PayloadError:
        raise
    except (ValueError, DecodeError) as exc:  # every decoder error is a ValueError
        raise PayloadError(f"bad model payload: {exc}") from None


def _decode(msg: cpb.ModelPayload, task: cpb.Task, *, shapes: Mapping[str, tuple[int, ...]],
            held: HeldState) -> tuple[Params, HeldState]:
    if msg.HasField("mask") and msg.HasField("mask_delta"):
        raise PayloadError("payload carries both a mask and a mask delta")
    if msg.HasField("mask"):
        held = replace(held, **dict(zip(("mask_id", "masks"),
                                        decode_mask_message(msg.mask, expected=shapes))))
    elif msg.HasField("mask_delta"):
        mask_id, masks = apply_mask_delta_message(msg.mask_delta, held_id=held.mask_id,
                                                  held=held.masks)
        held = replace(held, mask_id=mask_id, masks=masks)
    if task.mask_id and task.mask_id != held.mask_id:
        raise PayloadError(f"task needs mask {task.mask_id!r}, which the payload lacked")
    if msg.model.version != task.model_version:
        raise PayloadError(f"pulled version {msg.model.version}, task wants {task.model_version}")
    masks = held.masks if task.mask_id else None
    params = _model(msg, task, shapes=shapes, held=held, masks=masks)
    new = held.with_model(int(task.model_version), params)
    if new.model_digest != bytes(msg.model_digest):
        raise PayloadError(f"model of version {task.model_version} fails its digest")
    return params, new


def _model(msg: cpb.ModelPayload, task: cpb.Task, *, shapes: Mapping[str, tuple[int, ...]],
           held: HeldState, masks: dict[str, np.ndarray] | None) -> Params:
    if msg.form == cpb.MODEL_FORM_HELD:
        if held.params is None or held.model_version != task.model_version:
            raise PayloadError("payload says the client holds the model, it does not")
        return held.params
    decoded = decode_model(msg.model, expected=shapes, mask_id=task.mask_id, masks=masks)
    if msg.form == cpb.MODEL_FORM_FULL:
        return decoded
    if msg.form != cpb.MODEL_FORM_DELTA:
        raise PayloadError(f"unknown model form {msg.form}")
    if held.params is None or held.model_version != msg.base_version:
        raise PayloadError(f"delta applies to version {msg.base_version}, the client holds "
                           f"{held.model_version if held.params is not None else 'none'}")
    return apply_model_delta(held.params, decoded, masks)


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
