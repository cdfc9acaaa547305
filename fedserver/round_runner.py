"""The pure round runner: open / decode / add / close, with no threads and no gRPC.

One runner serves the coordinator, the centralized baseline, the benchmarks that emulate
rounds and large-scale simulation, so the round maths exists once. A round:

1. ``open(round)`` -> :class:`OpenRound`: the program's instructions for the round (mask,
   scores, encoding) and empty accumulators. The weight cap is fixed once per round from
   the population's declared example counts, either at ``open(round,
   reference_examples=...)`` or by ``fix_weight_cap`` (the coordinator does it at the first
   push, when the cohort has declared its sizes); never changing within a round keeps the
   result independent of arrival order;
2. ``decode(open, ticket, payload)``: parse and validate a pushed update (pure, may run
   outside any lock), refusing one that would overflow the global model on its own;
3. ``add(open, client_id, update, claimed_examples=..., metrics=...)``: bound the claimed
   weight and fold the update into the aggregator and side aggregators (validated first:
   a rejected update changes nothing);
4. ``close(open)`` -> :class:`RoundCandidate` or ``None`` (no update: no result): the new
   model after every transform, *not yet published*; then ``commit(candidate)`` publishes
   it, or ``rollback(candidate)`` restores every component's state (e.g. when writing the
   checkpoint failed). The global model stays finite: a candidate with a non-finite weight
   raises :class:`RoundFailed` and changes nothing.

Federated evaluation rounds use ``open_evaluation`` / ``add_evaluation`` /
``close_evaluation``: an example-weighted mean of the clients' metrics, by the same
``WeightedMean``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedserver.aggregators.base import (
    Accumulator,
    Aggregator,
    Contribution,
    RejectedContribution,
    RoundSpec,
    checked_values,
)
from fedserver.aggregators.mean import WeightedMean
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState, Stateful
from fedserver.round_program import AggregatorComponent, RoundProgram
from fedserver.transforms.base import RoundResult
from fedserver.updates import (
    DecodedUpdate,
    InvalidUpdate,
    PushTicket,
    check_applicable,
    decode_update,
)
from fedserver.uplink_codec import check_update_codec

Shapes = Mapping[str, tuple[int, ...]]


class RoundFailed(RuntimeError):
    """The round's aggregate cannot be applied (the model and every state are unchanged)."""


@dataclass
class OpenRound:
    round: int
    instructions: RoundInstructions
    accumulator: Accumulator
    sides: dict[str, tuple[Aggregator, Accumulator]]
    weight_cap: float | None  # None until fixed (see the module doc)
    client_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    server_seconds: float = 0.0

    @property
    def count(self) -> int:
        return self.accumulator.count

    @property
    def side_shapes(self) -> dict[str, Shapes]:
        return {key: getattr(agg, "shapes", {}) for key, (agg, _) in self.sides.items()}


@dataclass(frozen=True)
class RoundCandidate:
    round: int
    model: ModelState
    metrics: dict[str, float]  # transforms' metrics: server evaluation, privacy spent
    measurements: dict[str, Any]  # nested by role: aggregator, each transform
    snapshot: dict[str, dict[str, Any]]  # component states before the close
    aggregator_state: dict[str, Any]


@dataclass
class EvaluationRound:
    round: int
    mean: WeightedMean
    weight_cap: float | None
    accumulator: Accumulator | None = None
    keys: tuple[str, ...] = ()
    client_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class RoundRunner:
    def __init__(self, program: RoundProgram, *, model: ModelState) -> None:
        self.program = program
        self.model = model
        self.shapes = {n: tuple(a.shape) for n, a in model.params.items()}
        self._aggregator = AggregatorComponent(program.aggregator,
                                               program.aggregator.initialize(self.shapes))

    def components(self) -> dict[str, Stateful]:
        """The named stateful components a checkpoint holds."""
        return {"aggregator": self._aggregator, **self.program.transform_components()}

    # -- training rounds -----------------------------------------------------------------
    def open(self, round: int, *, reference_examples: float | None = None) -> OpenRound:
        spec = RoundSpec(round, self.shapes)
        sides = {key: (agg, agg.begin(agg.initialize(self.shapes), spec))
                 for key, agg in self.program.side_aggregators(round).items()}
        instructions = self.program.instructions(round, aggregator_state=self._aggregator.state)
        return OpenRound(round, instructions,
                         self.program.aggregator.begin(self._aggregator.state, spec), sides,
                         self._cap(reference_examples))

    def _cap(self, reference_examples: float | None) -> float | None:
        return None if reference_examples is None else self.program.weighting.cap(
            reference_examples)

    def fix_weight_cap(self, open_round: OpenRound | EvaluationRound,
                       reference_examples: float) -> None:
        """Fix the round's weight cap if it is not fixed yet (idempotent)."""
        if open_round.weight_cap is None:
            open_round.weight_cap = self.program.weighting.cap(reference_examples)

    def decode(self, open_round: OpenRound, ticket: PushTicket,
               payload: bytes | memoryview) -> DecodedUpdate:
        encoding = open_round.instructions.encoding  # binding (fedserver.uplink_codec)
        update = decode_update(
            ticket, payload, shapes=self.shapes,
            score_shapes=open_round.side_shapes.get("scores", {}),
            check_codec=lambda msg: check_update_codec(
                msg.delta, encoding, absolute=frozenset(msg.absolute_tensors)),
            base=self.model.params)
        check_applicable(update.delta, self.model.params)
        return update

    def add(self, open_round: OpenRound, client_id: str, update: DecodedUpdate, *,
            claimed_examples: int, metrics: Mapping[str, float] | None = None) -> float:
        """Fold one decoded update; returns the weight it was given."""
        start = time.perf_counter()
        self.fix_weight_cap(open_round, 0.0)  # nothing declared: no cap
        assert open_round.weight_cap is not None
        weight = self.program.weighting.weight(claimed_examples, cap=open_round.weight_cap)
        extras = {key: value for key, value in (("scores", update.scores),
                                                 ("representation", update.representation))
                  if value is not None}
        missing = set(open_round.sides) - set(extras)
        if missing:
            raise InvalidUpdate(f"this round needs the update's {sorted(missing)} tensors")
        try:  # every part is validated before anything is folded
            contribution = Contribution(client_id, checked_values(update.delta, self.shapes),
                                        weight, extras, dict(metrics or {}))
            for _, side in open_round.sides.values():
                side.add(contribution)
            open_round.accumulator.add(contribution)
        except RejectedContribution as exc:
            raise InvalidUpdate(str(exc)) from None
        open_round.client_metrics[client_id] = {
            **(metrics or {}), "num_examples": float(claimed_examples), "weight": weight}
        open_round.server_seconds += update.decode_seconds + time.perf_counter() - start
        return weight

    def close(self, open_round: OpenRound) -> RoundCandidate | None:
        """The new model after every transform (unpublished), or None for an empty round."""
        start = time.perf_counter()
        agg = self.program.aggregator
        output = agg.finalize(self._aggregator.state, open_round.accumulator)
        if output.result is None:
            return None
        sides = {key: a.finalize({}, acc).result for key, (a, acc) in open_round.sides.items()}
        snapshot = {name: c.state_dict() for name, c in self.components().items()}
        result = RoundResult(open_round.round, output.result, sides, output.measurements)
        model = self.model
        measurements: dict[str, Any] = {"aggregator": output.measurements}
        try:
            for transform in self.program.transforms:
                model, measured = transform.apply(open_round.round, model, result)
                measurements[transform.name] = measured
            _check_finite(model)
        except BaseException:
            self._restore(snapshot)
            raise
        metrics = {k: v for m in measurements.values() if isinstance(m, dict)
                   for k, v in m.get("metrics", {}).items()}
        open_round.server_seconds += time.perf_counter() - start
        return RoundCandidate(open_round.round, model.replace(version=self.model.version + 1),
                              metrics, measurements, snapshot, output.state)

    def commit(self, candidate: RoundCandidate) -> None:
        self.model = candidate.model
        self._aggregator.state = dict(candidate.aggregator_state)

    def rollback(self, candidate: RoundCandidate) -> None:
        self._restore(candidate.snapshot)

    def _restore(self, snapshot: Mapping[str, Mapping[str, Any]]) -> None:
        for name, component in self.components().items():
            component.load_state_dict(snapshot[name])

    # -- evaluation rounds ---------------------------------------------------------------
    def open_evaluation(self, round: int, *,
                        reference_examples: float | None = None) -> EvaluationRound:
        """Metrics are averaged by (capped) example count, whatever the training weighting."""
        return EvaluationRound(round, WeightedMean(), self._cap(reference_examples))

    def add_evaluation(self, ev: EvaluationRound, client_id: str, metrics: Mapping[str, float],
                       *, claimed_examples: int) -> None:
        values = {k: np.float64(v) for k, v in metrics.items()}
        if ev.accumulator is None:
            ev.keys = tuple(sorted(values))
            ev.accumulator = ev.mean.begin(ev.mean.initialize({}),
                                           RoundSpec(ev.round, {k: () for k in ev.keys}))
        self.fix_weight_cap(ev, 0.0)
        assert ev.weight_cap is not None
        weight = min(float(claimed_examples), ev.weight_cap)
        try:
            ev.accumulator.add(Contribution(client_id, values, weight))
        except RejectedContribution as exc:
            raise InvalidUpdate(f"evaluation metrics must be {list(ev.keys)}: {exc}") from None
        ev.client_metrics[client_id] = {**metrics, "num_examples": float(claimed_examples)}

    def close_evaluation(self, ev: EvaluationRound) -> dict[str, float]:
        if ev.accumulator is None:
            return {}
        out = ev.mean.finalize({"value_sum": {}, "weight_sum": {}}, ev.accumulator)
        return {k: float(v) for k, v in (out.result or {}).items()}


def _check_finite(model: ModelState) -> None:
    for name, arr in model.params.items():
        if not np.all(np.isfinite(arr)):
            raise RoundFailed(f"the aggregate would make tensor {name!r} non-finite; "
                              f"the round is failed and the model unchanged")
