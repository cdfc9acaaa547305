"""The client's half of secure aggregation: the four step tasks of a round.

One :class:`~fedcore.secagg.client_session.ClientSession` per round, created by the
round's ADVERTISE_KEYS task (a new one replaces any older session, so an abandoned round's
secrets are dropped) and fed each later step task's payload. MASKED_TRAIN pulls and trains
like a TRAIN task (the worker clips and, under distributed DP, adds its Gaussian noise
first), takes the kept coordinates of the public mask, encodes and masks them, and sends
the masked vector with the ``Step`` RPC; the plain update never leaves the process.

A step the session refuses (a malformed payload, a share that fails authentication, an
unmask request that would reveal one client's input) is not answered: it is logged and
the client checks in again, and the coordinator sees the client as dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from google.protobuf.message import DecodeError

from fedclient.local_work import TrainOutcome
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import PROTOCOL, ring
from fedcore.secagg.client_session import ClientSession
from fedcore.secagg.coordinates import KeptCoordinates
from fedcore.secagg.errors import ProtocolError, UnmaskRefused
from fedcore.secagg.keys import RoundContext

log = logging.getLogger("fedclient.secagg")
Params = dict[str, np.ndarray]
Send = Callable[[cpb.Task, bytes], None]
Train = Callable[[cpb.Task], tuple[TrainOutcome, dict[str, tuple[int, ...]],
                                    dict[str, np.ndarray] | None]]


class SecureAggregationSteps:
    """``send(task, payload)`` answers a step; ``train(task)`` pulls and trains, returning
    the outcome, the model's shapes and the masks the update conforms to; ``refused()``
    waits before the next check-in after a step this client will not answer (the
    coordinator hands the same task out again until the phase closes)."""

    def __init__(self, *, client_id: str, send: Send, train: Train,
                 refused: Callable[[], None]) -> None:
        self.client_id, self._send, self._train = client_id, send, train
        self._refused = refused  # the daemon's pause after a refusal (no hot loop)
        self._session: ClientSession | None = None

    def handlers(self) -> dict[int, Callable[[cpb.Task], None]]:
        return {cpb.TASK_KIND_ADVERTISE_KEYS: self._guarded(self._advertise),
                cpb.TASK_KIND_SHARE_KEYS: self._guarded(self._share_keys),
                cpb.TASK_KIND_MASKED_TRAIN: self._guarded(self._masked_train),
                cpb.TASK_KIND_UNMASK: self._guarded(self._unmask)}

    def _guarded(self, handler: Callable[[cpb.Task], bytes]) -> Callable[[cpb.Task], None]:
        def run(task: cpb.Task) -> None:
            if task.step.protocol != PROTOCOL:
                log.warning("round %d: refusing step of protocol %r (this client speaks %s)",
                            task.round, task.step.protocol[:64], PROTOCOL)
                self._refused()
                return
            try:
                payload = handler(task)
            except UnmaskRefused as exc:
                log.error("round %d: refusing the coordinator's unmask request: %s",
                          task.round, exc)
                self._refused()
                return
            except (ProtocolError, DecodeError, ValueError) as exc:
                log.warning("round %d: secure-aggregation step %d refused: %s", task.round,
                            task.kind, exc)
                self._refused()
                return
            self._send(task, payload)
        return run

    def _current(self, task: cpb.Task) -> ClientSession:
        session = self._session
        if session is None or session.context != RoundContext(task.run_id, int(task.round)):
            raise ProtocolError(f"no secure-aggregation session for round {task.round}")
        return session

    def _advertise(self, task: cpb.Task) -> bytes:
        self._session = None
        setup = spb.SecAggSetup.FromString(task.step.payload)
        self._session = ClientSession(context=RoundContext(task.run_id, int(task.round)),
                                      client_id=self.client_id, setup=setup)
        return self._session.advertise().SerializeToString()

    def _share_keys(self, task: cpb.Task) -> bytes:
        key_list = spb.SecAggKeyList.FromString(task.step.payload)
        return self._current(task).share_keys(key_list).SerializeToString()

    def _masked_train(self, task: cpb.Task) -> bytes:
        session = self._current(task)
        delivery = spb.SecAggShareDelivery.FromString(task.step.payload)
        if session.setup.mask_id != task.mask_id:
            raise ProtocolError(f"setup was for mask {session.setup.mask_id!r}, task trains "
                                f"under {task.mask_id!r}")
        outcome, shapes, masks = self._train(task)
        vector = KeptCoordinates(shapes, masks).gather(outcome.delta)
        masked = session.masked_input(delivery, vector)
        bits = session.encoding.ring_bits
        return spb.SecAggMaskedInput(vector_length=masked.size, ring_bits=bits,
                                     values=ring.pack(masked, bits),
                                     num_examples=outcome.num_examples,
                                     metrics=outcome.metrics).SerializeToString()

    def _unmask(self, task: cpb.Task) -> bytes:
        request = spb.SecAggUnmaskRequest.FromString(task.step.payload)
        return self._current(task).unmask(request).SerializeToString()
