"""Where a task's global model comes from, cheapest first.

1. the payload inline in the task (built for what this client declared at check-in);
2. what the client holds already (the task names the model's digest);
3. the seeded initialisation: version 0 of a *registry* model, built locally with the
   seed the task names and accepted only if its digest equals the task's ``init_digest``
   (an entry point named by the coordinator is never imported for this);
4. a pull declaring what it holds (the coordinator answers with a delta or just the mask);
5. when that payload does not verify, one pull declaring nothing (full model and mask).

Invariant: the model returned, and the state held afterwards, verified against the digest
the coordinator named; nothing unverified is ever trained on. Shared by the daemon and the
in-process emulation (only ``pull`` differs: an RPC, or a function call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import lru_cache

import numpy as np

from fedclient.payloads import HeldState, Params, PayloadError, decode_model_payload
from fedcore.model_deltas import model_sha256
from fedcore.models import build_model, model_names
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb

log = logging.getLogger("fedclient.model_source")
Pull = Callable[[HeldState], bytes]  # a PullModel for the task, declaring the given state


@lru_cache(maxsize=4)
def _seeded(name: str, seed: int) -> tuple[tuple[str, np.ndarray], ...]:
    params = get_parameters(build_model(name, seed=seed))
    return tuple((n, np.asarray(p, dtype=np.float32)) for n, p in params.items())


def seeded_initial_model(task: cpb.Task) -> Params | None:
    """The task's version-0 model built locally, or None (not offered, not a registry
    model, or its digest differs from ``task.init_digest``)."""
    if task.model_version != 0 or len(task.init_digest) != 32 \
            or task.model_name not in model_names():
        return None
    params = {n: p.copy() for n, p in _seeded(task.model_name, int(task.init_seed))}
    if model_sha256(params) != bytes(task.init_digest):
        log.warning("the seeded initial model %r (seed %d) does not match the coordinator's "
                    "digest; pulling it instead", task.model_name, task.init_seed)
        return None
    return params


def obtain_model(task: cpb.Task, held: HeldState, *, shapes: Mapping[str, tuple[int, ...]],
                 pull: Pull) -> tuple[Params, HeldState]:
    """The task's verified global model and the new held state (see the module doc)."""
    if task.HasField("model_payload"):
        try:
            return decode_model_payload(task.model_payload.SerializeToString(), task,
                                        shapes=shapes, held=held)
        except PayloadError as exc:
            log.warning("inline payload of task %s rejected (%s); pulling", task.task_id, exc)
    if not held.holds(task) and task.model_version == 0:
        seeded = seeded_initial_model(task)
        if seeded is not None and dict(shapes) == {n: p.shape for n, p in seeded.items()}:
            held = held.with_model(0, seeded)
    if held.holds(task):
        assert held.params is not None
        return held.params, held
    try:
        return decode_model_payload(pull(held), task, shapes=shapes, held=held)
    except PayloadError as exc:
        if held.declares_nothing():
            raise
        log.warning("payload for task %s does not apply to what this client holds (%s); "
                    "pulling the full model and mask", task.task_id, exc)
    return decode_model_payload(pull(HeldState()), task, shapes=shapes, held=HeldState())
