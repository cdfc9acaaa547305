"""``QFair(inner, q, lipschitz)``: q-FFL's aggregate (q-FedAvg, Li et al. 2020) as a
re-weighting wrapper around a weighted mean.

q-FFL minimizes ``sum_k F_k^(q+1) / (q+1)``: clients whose loss ``F_k`` is high count more,
so the model serves its worst clients better (q = 0 is FedAvg with uniform weights). With
``L`` an estimate of the local Lipschitz constant (the inverse client learning rate, as in
the paper) and client k's delta ``d_k = local_k - global``, q-FedAvg's server step is

    global += sum_k F_k^q L d_k / sum_k h_k,   h_k = q F_k^(q-1) L^2 ||d_k||^2 + L F_k^q

``F_k`` is the loss of the *global* model on client k's data before it trains, which
clients report as ``initial_loss`` when told to (:class:`fedserver.transforms.
client_objective.InitialLossReport`). This wrapper feeds the inner weighted mean
``weight = h_k`` and ``values = (F_k^q L / h_k) d_k``, whose ``sum w v / sum w`` is exactly
the step above; the inner mean (or a secure or noised sum inside it) is unchanged. The
client-declared example count plays no part. A contribution without a finite, non-negative
``initial_loss`` is rejected.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fedserver.aggregators.base import (
    Accumulator,
    Aggregator,
    Contribution,
    Output,
    RejectedContribution,
    RoundSpec,
    State,
    checked_values,
    same_kind,
)

LOSS_REPORT = "initial_loss"


class QFairAccumulator:
    def __init__(self, inner: Accumulator, *, shapes: dict[str, tuple[int, ...]], q: float,
                 lipschitz: float) -> None:
        self.inner, self._shapes, self._q, self._lipschitz = inner, shapes, q, lipschitz
        self.losses: list[float] = []

    @property
    def count(self) -> int:
        return self.inner.count

    def add(self, contribution: Contribution) -> None:
        loss = contribution.reports.get(LOSS_REPORT)
        if loss is None or not (np.isfinite(loss) and loss >= 0):
            raise RejectedContribution(f"q-FFL needs the client's finite {LOSS_REPORT!r} >= 0, "
                                       f"got {loss!r}")
        values = checked_values(contribution.values, self._shapes)
        q, lip, loss = self._q, self._lipschitz, float(loss)
        sq_norm = sum(float(np.vdot(v, v)) for v in values.values())
        step_weight = loss ** q * lip
        h = (q * loss ** (q - 1) * lip ** 2 * sq_norm if q > 0 and loss > 0 else 0.0) + step_weight
        if not (np.isfinite(h) and h > 0):
            raise RejectedContribution(f"q-FFL weight h = {h!r} is not finite and > 0 "
                                       f"({LOSS_REPORT} {loss!r})")
        scale = step_weight / h
        self.inner.add(replace(contribution, weight=h,
                               values={n: scale * v for n, v in values.items()}))
        self.losses.append(loss)

    def merge(self, other: QFairAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        self.inner.merge(other.inner)
        self.losses += other.losses


class QFair:
    def __init__(self, inner: Aggregator, *, q: float, lipschitz: float) -> None:
        if not (np.isfinite(q) and q >= 0):
            raise ValueError(f"q must be finite and >= 0, got {q!r}")
        if not (np.isfinite(lipschitz) and lipschitz > 0):
            raise ValueError(f"lipschitz must be finite and > 0, got {lipschitz!r}")
        self.inner, self.q, self.lipschitz = inner, float(q), float(lipschitz)
        self.max_buffered = inner.max_buffered

    def initialize(self, shapes: dict[str, tuple[int, ...]]) -> State:
        return self.inner.initialize(shapes)

    def begin(self, state: State, spec: RoundSpec) -> QFairAccumulator:
        return QFairAccumulator(self.inner.begin(state, spec), shapes=dict(spec.shapes),
                                q=self.q, lipschitz=self.lipschitz)

    def finalize(self, state: State, acc: QFairAccumulator) -> Output:  # type: ignore[override]
        out = self.inner.finalize(state, acc.inner)
        losses = acc.losses
        return Output(out.state, out.result, {
            **out.measurements, "q": self.q,
            "initial_loss_mean": float(np.mean(losses)) if losses else 0.0,
            "initial_loss_max": float(np.max(losses)) if losses else 0.0})

    def get_config(self) -> dict[str, Any]:
        return {"name": "q_fair", "q": self.q, "lipschitz": self.lipschitz,
                "inner": self.inner.get_config()}
