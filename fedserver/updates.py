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


@dataclass
class DecodedUpdate:
    delta: Params
    scores: Params | None
    decode_seconds: float


def decode_update(ticket: PushTicket, payload: bytes | memoryview, *,
                  shapes: Mapping[str, tuple[int, ...]],
                  score_shapes: Mapping[str, tuple[int, ...]],
                  check_codec: Callable[[cpb.UpdatePayload], None] = lambda _msg: None,
                  ) -> DecodedUpdate:
    """Parse and decode outside the lock; raises InvalidUpdate or a model_codec error.
    ``check_codec`` vets the parsed payload's encoding before anything is decoded."""
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
    delta = decode_model(msg.delta, expected=shapes, mask_id=ticket.mask_id,
                         masks=ticket.masks)
    _check_pruned_zero(delta, ticket.masks)
    scores = None
    if ticket.wants_scores:
        if not msg.HasField("scores"):
            raise InvalidUpdate("this round needs importance scores (UpdatePayload.scores)")
        scores = decode_model(msg.scores, expected=score_shapes)
    return DecodedUpdate(delta, scores, time.perf_counter() - start)


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
