"""``DistributedDPSum``: the sum of updates that clients clipped and noised themselves.

Distributed DP for an untrusted coordinator: each client clips its delta to S and adds
``N(0, sigma_c^2)`` with ``sigma_c = z S / sqrt(m)`` before encoding (instructions
``clip_norm`` and ``client_noise_stddev``), so the coordinator never sees an un-noised update
and the sum of m honest contributions carries noise of standard deviation ``z S``. The
server adds no noise and cannot re-clip (clipping a noised update would scale its noise
away). The privacy event is what actually arrived: k contributions carry total noise
``sqrt(k/m) z S``, so the round is accounted at ``z sqrt(k / m)``, less private than planned
when fewer than m clients report. Weights are ignored.

What it protects against: a curious coordinator (or anyone reading its store) learns each
update only through the client's own noise, which alone is a weak guarantee (each client
carries 1/sqrt(m) of the noise); the full (epsilon, delta) holds for the *sum*, which is
what secure aggregation will reveal alone. What it costs: the same total noise as central
DP when all m clients report, plus the quantization of each noised update.
"""

from __future__ import annotations

import math
from typing import Any

from fedserver.aggregators.base import Aggregator, Output, RoundSpec, Shapes, State
from fedserver.aggregators.sum import Sum, SumAccumulator


class DistributedDPSum:
    max_buffered = None

    def __init__(self, *, clip_norm: float, noise_multiplier: float, expected_clients: float,
                 inner: Aggregator | None = None) -> None:
        if not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip norm must be finite and > 0, got {clip_norm!r}")
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}")
        if not expected_clients > 0:
            raise ValueError(f"expected_clients must be > 0, got {expected_clients!r}")
        self.clip_norm, self.noise_multiplier = float(clip_norm), float(noise_multiplier)
        self.expected_clients = float(expected_clients)
        self.inner = inner if inner is not None else Sum()

    @property
    def client_noise_stddev(self) -> float:
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.expected_clients)

    def initialize(self, shapes: Shapes) -> State:
        return {"inner": self.inner.initialize(shapes), "clip_norm": self.clip_norm,
                "client_noise_stddev": self.client_noise_stddev}

    def begin(self, state: State, spec: RoundSpec) -> SumAccumulator:
        return self.inner.begin(state["inner"], spec)  # type: ignore[return-value]

    def finalize(self, state: State, acc: SumAccumulator) -> Output:  # type: ignore[override]
        inner = self.inner.finalize(state["inner"], acc)
        event = None
        if inner.result is not None:
            event = {"noise_multiplier":
                     self.noise_multiplier * math.sqrt(acc.count / self.expected_clients)}
        return Output({**state, "inner": inner.state}, inner.result,
                      {"clip_norm": self.clip_norm, "contributions": acc.count,
                       "dp_event": event, "inner": inner.measurements})

    def get_config(self) -> dict[str, Any]:
        return {"name": "distributed_dp_sum", "clip_norm": self.clip_norm,
                "noise_multiplier": self.noise_multiplier,
                "expected_clients": self.expected_clients, "inner": self.inner.get_config()}
