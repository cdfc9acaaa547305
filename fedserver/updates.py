"""A pushed update, from validated header to decoded arrays.

The coordinator validates a push in two steps: the header against the open round
(:class:`PushTicket`, under the coordinator's lock), then the payload, which
:func:`decode_update` parses and decodes *outside* the lock. Only a fully decoded and
validated update (names, order, shapes, mask, finiteness, nothing at pruned positions)
is ever folded into the aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from fedcore.model_codec import decode_model
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.representation import check_summary, triangle_size
from fedcore.weight_clustering import clustered_names
from fedserver.instructions import RoundInstructions

Params = dict[str, np.ndarray]


class InvalidUpdate(ValueError):
    """A pushed update is malformed or inconsistent (maps to INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class PushTicket:
    """What a push was validated against when its header arrived."""

    client_id: str
    task_id: str
    round: int
    version: int
    mask_id: str
    masks: dict[str, np.ndarray] | None
    num_examples: int
    digest: bytes
    wants_scores: bool
    started: float
    clusters: int = 0  # FedCompress: the task's k (its clustered tensors come as weights)
    representation_dim: int = -1  # >= 0: the task asked for a representation summary

    @classmethod
    def for_task(cls, instr: RoundInstructions, *, client_id: str, task_id: str, round: int,
                 version: int, num_examples: int, digest: bytes, started: float) -> PushTicket:
        """The ticket of a push for a task of a round with instructions ``instr``."""
        return cls(client_id, task_id, round, version, instr.mask_id, instr.masks,
                   num_examples, digest, "scores" in instr.side_keys, started,
                   clusters=instr.clusters,
                   representation_dim=(instr.representation_dim
                                       if instr.report_representation else -1))


@dataclass
class DecodedUpdate:
    delta: Params
    scores: Params | None
    decode_seconds: float
    representation: Params | None = None


def decode_update(ticket: PushTicket, payload: bytes | memoryview, *,
                  shapes: Mapping[str, tuple[int, ...]],
                  score_shapes: Mapping[str, tuple[int, ...]],
                  check_codec: Callable[[cpb.UpdatePayload], None] = lambda _msg: None,
                  base: Mapping[str, np.ndarray] | None = None) -> DecodedUpdate:
    """Parse and decode outside the lock; raises InvalidUpdate or a model_codec error.
    ``check_codec`` vets the parsed payload's encoding before anything is decoded.

    ``base`` is the global model of the ticket's version: the tensors the update sends as
    weights (FedCompress, :func:`check_absolute`) become ``weights - base``."""
    start = time.perf_counter()
    msg = cpb.UpdatePayload()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise InvalidUpdate(f"update payload is not a valid UpdatePayload: {exc}") from None
    check_codec(msg)
    if msg.delta.version != ticket.version:
        raise InvalidUpdate(f"payload model version {msg.delta.version} differs from the "
                            f"header's {ticket.version}")
    absolute = check_absolute(msg, shapes, ticket)
    delta = decode_model(msg.delta, expected=shapes, mask_id=ticket.mask_id,
                         masks=ticket.masks)
    if absolute:
        if base is None:
            raise InvalidUpdate("weights sent as absolute values need the global model")
        delta = {n: (d - base[n]).astype(np.float32) if n in absolute else d
                 for n, d in delta.items()}
    _check_pruned_zero(delta, ticket.masks)
    scores = None
    if ticket.wants_scores:
        if not msg.HasField("scores"):
            raise InvalidUpdate("this round needs importance scores (UpdatePayload.scores)")
        scores = decode_model(msg.scores, expected=score_shapes)
    return DecodedUpdate(delta, scores, time.perf_counter() - start,
                         _representation(msg, ticket))


def check_absolute(msg: cpb.UpdatePayload, shapes: Mapping[str, tuple[int, ...]],
                   ticket: PushTicket) -> frozenset[str]:
    """The tensors sent as weights: exactly the task's clustered tensors, each as a
    codebook of at most ``clusters`` values (so the round's clustering holds)."""
    want = clustered_names(shapes, clusters=ticket.clusters, masks=ticket.masks)
    got = list(msg.absolute_tensors)
    if got != want:
        raise InvalidUpdate(f"absolute_tensors must be the task's clustered tensors {want}, "
                            f"got {got[:8]}")
    for tensor in msg.delta.tensors:
        if tensor.name in want:
            kind = tensor.values.WhichOneof("kind")
            size = tensor.values.clustered.codebook.raw_size // 4 if kind == "clustered" else 0
            if kind != "clustered" or not 1 <= size <= ticket.clusters:
                raise InvalidUpdate(f"tensor {tensor.name!r} must be clustered with at most "
                                    f"{ticket.clusters} centroids")
    return frozenset(want)


def _representation(msg: cpb.UpdatePayload, ticket: PushTicket) -> Params | None:
    if ticket.representation_dim < 0:
        return None
    if not msg.HasField("representation"):
        raise InvalidUpdate("this round needs a representation summary "
                            "(UpdatePayload.representation)")
    dim = ticket.representation_dim
    tensors = decode_model(msg.representation, expected={
        "gram": (triangle_size(dim),), "examples": (1,), "correct": (1,)})
    try:
        check_summary(tensors, dim=dim)
    except ValueError as exc:
        raise InvalidUpdate(str(exc)) from None
    return tensors


def check_applicable(delta: Params, params: Mapping[str, np.ndarray]) -> None:
    """Refuse an update that would overflow the global model on its own.

    Why: a finite but huge delta (3e38) is valid float32, yet ``global + delta`` is inf,
    or becomes inf when a later round adds another; refused here, at the push, the
    client hears why (INVALID_ARGUMENT) and the round goes on with the honest updates.
    The mean of updates that each pass stays finite when applied with a unit step (it is
    bounded by the largest), so this and the close-time check of the aggregate
    (:func:`fedserver.round_runner.RoundRunner.close`) keep the model finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        for name, values in delta.items():
            if not np.all(np.isfinite(params[name] + values)):
                raise InvalidUpdate(f"tensor {name!r}: the update would make the global model "
                                    "non-finite (float32 overflow); refused")


def _check_pruned_zero(delta: Params, masks: dict[str, np.ndarray] | None) -> None:
    """An update may not carry values at pruned positions (it would densify the model)."""
    for name, mask in (masks or {}).items():
        if np.any(delta[name][~mask]):
            raise InvalidUpdate(f"tensor {name!r} has values at pruned positions of the mask")
