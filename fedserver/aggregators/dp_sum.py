"""``DPSum``: clip every contribution to L2 norm S, sum, add Gaussian noise N(0, (z S)^2).

The Gaussian mechanism of DP-FedAvg (McMahan et al. 2018) on the *decoded* updates: the
server clips again whatever the client sent (a client that ignores clipping is clipped here
and counted in ``clipped``), so the sum's sensitivity to one client is S, and the noise goes
on the aggregate, never on a compressed payload. Wrap it in ``FixedDenominatorMean`` so the
denominator does not depend on who showed up. Weights are ignored (every client counts
once: a weight would scale the sensitivity).

S is fixed or adaptive (:class:`fedserver.aggregators.adaptive_clip.AdaptiveClip`); it
lives in the aggregator's explicit state, so it survives restarts. Each finalize emits the
round's privacy event in its measurements (``dp_event``: the effective noise multiplier);
the accountant outside the aggregator composes it. Noise comes from
:class:`fedserver.privacy.noise.SecureGaussian`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from fedcore.norms import clip_scale, global_l2_norm
from fedcore.secure_noise import SecureGaussian
from fedserver.aggregators.adaptive_clip import AdaptiveClip
from fedserver.aggregators.base import (
    Accumulator,
    Aggregator,
    Contribution,
    Output,
    RoundSpec,
    Shapes,
    State,
    checked_values,
    same_kind,
)
from fedserver.aggregators.sum import Sum

UNCLIPPED = "dp_unclipped"  # client report: 1.0 when its own clipping did not bite


class DPSumAccumulator:
    def __init__(self, inner: Accumulator, *, shapes: Shapes, clip_norm: float) -> None:
        self.inner, self._shapes, self.clip_norm = inner, shapes, clip_norm
        self.clipped = 0  # clipped here, on the server
        self.unclipped_bits = 0.0  # sum of b_k

    @property
    def count(self) -> int:
        return self.inner.count

    def add(self, contribution: Contribution) -> None:
        values = checked_values(contribution.values, self._shapes)
        scale = clip_scale(global_l2_norm(values), self.clip_norm)
        bit = 1.0 if scale == 1.0 else 0.0
        if UNCLIPPED in contribution.reports:  # the client clipped already: its bit counts
            bit = min(bit, 1.0 if contribution.reports[UNCLIPPED] >= 0.5 else 0.0)
        self.inner.add(replace(contribution, weight=1.0,
                               values={n: v * scale for n, v in values.items()}))
        self.clipped += scale < 1.0
        self.unclipped_bits += bit

    def merge(self, other: DPSumAccumulator) -> None:  # type: ignore[override]
        same_kind(self, other)
        if other.clip_norm != self.clip_norm:
            raise TypeError("cannot merge DP sums clipped to different norms")
        self.inner.merge(other.inner)
        self.clipped += other.clipped
        self.unclipped_bits += other.unclipped_bits


class DPSum:
    max_buffered = None

    def __init__(self, *, clip: float | AdaptiveClip, noise_multiplier: float,
                 expected_clients: float, noise: SecureGaussian,
                 inner: Aggregator | None = None) -> None:
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}")
        if isinstance(clip, float | int) and not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip norm must be finite and > 0, got {clip!r}")
        if not expected_clients > 0:
            raise ValueError(f"expected_clients must be > 0, got {expected_clients!r}")
        self.clip, self.noise_multiplier = clip, float(noise_multiplier)
        self.expected_clients, self._noise = float(expected_clients), noise
        self.inner = inner if inner is not None else Sum()
        adaptive = isinstance(clip, AdaptiveClip)
        self.value_noise_multiplier = (clip.value_noise_multiplier(self.noise_multiplier)
                                       if adaptive else self.noise_multiplier)

    def initialize(self, shapes: Shapes) -> State:
        norm = self.clip.initial_norm if isinstance(self.clip, AdaptiveClip) else self.clip
        return {"inner": self.inner.initialize(shapes), "clip_norm": float(norm)}

    def begin(self, state: State, spec: RoundSpec) -> DPSumAccumulator:
        return DPSumAccumulator(self.inner.begin(state["inner"], spec), shapes=spec.shapes,
                                clip_norm=float(state["clip_norm"]))

    def finalize(self, state: State, acc: DPSumAccumulator) -> Output:  # type: ignore[override]
        inner = self.inner.finalize(state["inner"], acc.inner)
        norm = float(state["clip_norm"])
        result = None
        if inner.result is not None:
            stddev = self.value_noise_multiplier * norm
            result = {n: v + self._noise.normal(v.shape, stddev=stddev)
                      for n, v in inner.result.items()}
        next_norm = norm
        if isinstance(self.clip, AdaptiveClip) and inner.result is not None:
            noised = acc.unclipped_bits + float(
                self._noise.normal((1,), stddev=self.clip.count_stddev)[0])
            next_norm = self.clip.next_norm(norm, noised_unclipped=noised,
                                            expected_clients=self.expected_clients)
        measurements = {"clip_norm": norm, "next_clip_norm": next_norm,
                        "clipped": acc.clipped, "unclipped_fraction":
                        acc.unclipped_bits / acc.count if acc.count else 0.0,
                        "dp_event": {"noise_multiplier": self.noise_multiplier}
                        if inner.result is not None else None,
                        "inner": inner.measurements}
        return Output({"inner": inner.state, "clip_norm": next_norm}, result, measurements)

    def get_config(self) -> dict[str, Any]:
        clip = ({"adaptive": vars(self.clip).copy()} if isinstance(self.clip, AdaptiveClip)
                else {"fixed": float(self.clip)})
        return {"name": "dp_sum", "clip": clip, "noise_multiplier": self.noise_multiplier,
                "expected_clients": self.expected_clients, "inner": self.inner.get_config()}
