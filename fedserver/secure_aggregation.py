"""Secure aggregation on the coordinator: the four phases and their step handler.

:class:`SecAggProtocol` is the round program's :class:`~fedserver.step_protocol.StepProtocol`
when ``[secagg] enabled``. It turns the round's TRAIN phase into ADVERTISE_KEYS (a sampled
cohort) -> SHARE_KEYS -> MASKED_TRAIN -> UNMASK (each over the survivors of the previous
phase, each with the reconstruction threshold t as its quorum), runs one
:class:`~fedcore.secagg.server_session.ServerSession` per round, and is the
:class:`~fedserver.aggregators.secure_sum.Unmasker` of the round's ``SecureSum``: masked
inputs are folded by the aggregator as they arrive (through the ordinary
``RoundRunner.add``), and when the UNMASK phase closes the total mask is reconstructed
here. If it cannot be (fewer than t shares of some secret, a share that reconstructs a key
other than the advertised one) the UNMASK phase is marked failed, so the round fails and
the model is unchanged. Wire messages: ``proto/fedprune/v1/secagg.proto``.

Nothing is persisted: a coordinator restarted mid-round abandons that round (its clients'
sessions are discarded when they get the next ADVERTISE_KEYS task).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError, Message

from fedcore.pb import secagg_pb2 as spb
from fedcore.secagg import PROTOCOL, ring
from fedcore.secagg.coordinates import KeptCoordinates
from fedcore.secagg.errors import ProtocolError, UnmaskFailed
from fedcore.secagg.fixed_point import FixedPoint, ring_bits_for
from fedcore.secagg.keys import RoundContext
from fedcore.secagg.server_session import ServerSession
from fedserver.config import RoundConfig, SecAggConfig
from fedserver.instructions import RoundInstructions
from fedserver.round_plan import Phase, PhaseKind
from fedserver.round_state import ClosedStep, Step
from fedserver.step_protocol import STEP_TASK_KINDS, StepOutcome, StepPayload
from fedserver.updates import DecodedUpdate, InvalidUpdate

MAX_EXAMPLES = 1 << 40


def max_cohort(round_config: RoundConfig) -> int:
    return math.ceil(round_config.clients_per_round * (1 + round_config.over_selection))


def threshold_count(config: SecAggConfig, round_config: RoundConfig) -> int:
    """t as a count: a fraction applies to the share group (cohort, or neighbours + 1)."""
    if config.threshold >= 1:
        return int(config.threshold)
    group = round_config.clients_per_round
    if config.neighbours and config.neighbours < group - 1:
        group = config.neighbours + 1
    return max(2, math.ceil(config.threshold * group))


def encoding_for(config: SecAggConfig, round_config: RoundConfig) -> FixedPoint:
    return FixedPoint(value_bits=config.value_bits,
                      ring_bits=ring_bits_for(config.value_bits, max_cohort(round_config)),
                      clip_range=config.clip_range)


@dataclass
class _Round:
    session: ServerSession
    coordinates: KeptCoordinates


class SecAggProtocol:
    name = PROTOCOL
    kinds = frozenset(STEP_TASK_KINDS)

    def __init__(self, *, config: SecAggConfig, round_config: RoundConfig,
                 shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.config, self.round_config = config, round_config
        self.encoding = encoding_for(config, round_config)
        self.threshold = threshold_count(config, round_config)
        self._shapes = dict(shapes)
        self._rounds: dict[int, _Round] = {}
        self._corrections: dict[int, dict[str, np.ndarray]] = {}

    def phases(self, config: RoundConfig) -> tuple[Phase, ...]:
        target = config.clients_per_round
        quorum = min(target, max(self.threshold, config.min_clients))
        step = self.config.step_deadline_s

        def phase(kind: PhaseKind, deadline: float, cohort: str) -> Phase:
            return Phase(kind, target=target, quorum=quorum, deadline_s=deadline, cohort=cohort)

        return (phase(PhaseKind.ADVERTISE_KEYS, step, "sample"),
                phase(PhaseKind.SHARE_KEYS, step, "survivors"),
                phase(PhaseKind.MASKED_TRAIN, config.deadline_s, "survivors"),
                phase(PhaseKind.UNMASK, step, "survivors"))

    # -- tasks ---------------------------------------------------------------------------
    def task_step(self, step: Step, client_id: str, instructions: RoundInstructions, *,
                  run_id: str) -> StepPayload:
        if step.kind is PhaseKind.ADVERTISE_KEYS:
            current = self._open(step, instructions, run_id=run_id)
            message: Message = current.session.setup
        else:
            session = self._rounds[step.round].session
            message = {PhaseKind.SHARE_KEYS: session.key_list_for,
                       PhaseKind.MASKED_TRAIN: session.delivery_for,
                       PhaseKind.UNMASK: session.unmask_request_for}[step.kind](client_id)
        return StepPayload(PROTOCOL, message.SerializeToString(), self.threshold)

    def _open(self, step: Step, instructions: RoundInstructions, *, run_id: str) -> _Round:
        current = self._rounds.get(step.round)
        if current is None or current.session.cohort != step.selected:
            self._rounds = {}  # sessions of earlier rounds (or an abandoned attempt) go
            coordinates = KeptCoordinates(self._shapes, instructions.masks)
            e = self.encoding
            setup = spb.SecAggSetup(
                value_bits=e.value_bits, ring_bits=e.ring_bits, clip_range=e.clip_range,
                threshold=self.threshold, cohort_size=len(step.selected),
                neighbours=self.config.neighbours, vector_length=coordinates.count,
                mask_id=instructions.mask_id)
            session = ServerSession(context=RoundContext(run_id, step.round), setup=setup,
                                    cohort=step.selected)
            current = self._rounds[step.round] = _Round(session, coordinates)
        return current

    # -- results -------------------------------------------------------------------------
    def handle(self, step: Step, client_id: str, payload: bytes) -> StepOutcome:
        current = self._rounds.get(step.round)
        if current is None:
            raise InvalidUpdate(f"round {step.round} has no secure-aggregation session")
        session = current.session
        try:
            if step.kind is PhaseKind.MASKED_TRAIN:
                return self._masked_input(current, spb.SecAggMaskedInput.FromString(payload))
            if step.kind is PhaseKind.ADVERTISE_KEYS:
                session.add_keys(client_id, spb.SecAggPublicKeys.FromString(payload))
            elif step.kind is PhaseKind.SHARE_KEYS:
                session.add_shares(client_id, spb.SecAggShareUpload.FromString(payload))
            else:
                session.add_unmask(client_id, spb.SecAggUnmaskResponse.FromString(payload))
        except DecodeError as exc:
            raise InvalidUpdate(f"{step.kind.value} payload does not parse: {exc}") from None
        except (ProtocolError, ring.RingError) as exc:
            raise InvalidUpdate(f"{step.kind.value}: {exc}") from None
        return StepOutcome()

    def _masked_input(self, current: _Round, msg: spb.SecAggMaskedInput) -> StepOutcome:
        start = time.perf_counter()
        setup = current.session.setup
        if (msg.vector_length, msg.ring_bits) != (setup.vector_length, setup.ring_bits):
            raise ProtocolError(f"masked input must have {setup.vector_length} values of "
                                f"{setup.ring_bits} bits")
        if not 0 < msg.num_examples <= MAX_EXAMPLES:
            raise ProtocolError(f"num_examples must be in 1..{MAX_EXAMPLES}")
        metrics = dict(msg.metrics)
        if len(metrics) > 64 or not all(np.isfinite(v) for v in metrics.values()):
            raise ProtocolError("metrics must be at most 64 finite values")
        values = ring.unpack(msg.values, setup.ring_bits, int(setup.vector_length))
        delta = current.coordinates.scatter(values.astype(np.float64))
        update = DecodedUpdate(delta, None, time.perf_counter() - start)
        return StepOutcome(update, int(msg.num_examples), metrics)

    def phase_closed(self, closed: ClosedStep) -> ClosedStep:
        step = closed.step
        current = self._rounds.get(step.round)
        if closed.succeeded and current is not None:
            survivors = list(step.results)
            if step.kind is PhaseKind.ADVERTISE_KEYS:
                current.session.close_advertise(survivors)
            elif step.kind is PhaseKind.SHARE_KEYS:
                current.session.close_share_keys(survivors)
            elif step.kind is PhaseKind.MASKED_TRAIN:
                current.session.close_masked(survivors)
            else:
                closed = self._unmask(closed, current)
        if closed.ends_round:
            self._rounds.pop(step.round, None)
        return closed

    def _unmask(self, closed: ClosedStep, current: _Round) -> ClosedStep:
        try:
            total = current.session.correction(current.coordinates.count)
        except UnmaskFailed as exc:
            return dataclasses.replace(closed, succeeded=False, reason=f"unmask failed: {exc}")
        self._corrections = {closed.step.round: current.coordinates.scatter(total)}
        return closed

    def take_correction(self, round: int) -> Mapping[str, np.ndarray]:
        if round not in self._corrections:
            raise RuntimeError(f"round {round} was not unmasked")
        return self._corrections.pop(round)
