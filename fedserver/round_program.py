"""The round program: one aggregator, its side aggregators, model transforms, weighting.

Built by a preset (:mod:`fedserver.presets`) and run by the
:class:`fedserver.round_runner.RoundRunner`. The program is data plus a few queries: what
clients are told in a round (:meth:`instructions`) and which named stateful components a
checkpoint must hold (:meth:`components`). Nothing here knows about gRPC, threads or the
store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedcore.model_codec import Encoding
from fedserver.aggregators.base import Aggregator, State, find_key
from fedserver.aggregators.weighting import Weighting
from fedserver.instructions import RoundInstructions, merge_instructions
from fedserver.model_state import Stateful
from fedserver.step_protocol import StepProtocol
from fedserver.transforms.base import ModelTransform


@dataclass
class AggregatorComponent:
    """Checkpoints an aggregator's explicit state next to its configuration."""

    aggregator: Aggregator
    state: State

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "state" not in state:
            raise ValueError("aggregator state lacks key 'state'")
        self.state = dict(state["state"])

    def get_config(self) -> dict[str, Any]:
        return self.aggregator.get_config()


@dataclass
class RoundProgram:
    name: str  # the preset's name
    aggregator: Aggregator
    transforms: tuple[ModelTransform, ...]
    weighting: Weighting
    encoding: Encoding  # default uplink encoding
    protocol: StepProtocol | None = None  # multi-step rounds (secure aggregation)

    def __post_init__(self) -> None:
        names = [t.name for t in self.transforms]
        if len(set(names)) != len(names) or "aggregator" in names:
            raise ValueError(f"transform names must be unique and not 'aggregator': {names}")

    def instructions(self, round: int, *, aggregator_state: State | None = None
                     ) -> RoundInstructions:
        """Transforms' instructions; a DP aggregator's current clip norm and client noise
        (found in its state) are told to clients so they clip (and, in distributed DP,
        noise) before their lossy encoding."""
        base: dict[str, Any] = {"encoding": self.encoding}
        for key in ("clip_norm", "client_noise_stddev"):  # published by the DP aggregators
            value = find_key(aggregator_state or {}, key)
            if value is not None:
                base[key] = float(value)
        return merge_instructions(round, base,
                                  ((t.name, t.instructions(round)) for t in self.transforms))

    def admits(self, round: int) -> str | None:
        """Why ``round`` must not run (e.g. it would exceed the privacy budget), or None."""
        for t in self.transforms:
            reason = t.admits(round)
            if reason is not None:
                return reason
        return None

    def side_aggregators(self, round: int) -> dict[str, Aggregator]:
        sides: dict[str, Aggregator] = {}
        for t in self.transforms:
            for key, agg in t.side_aggregators(round).items():
                if key in sides:
                    raise ValueError(f"two transforms want side tensors {key!r}")
                sides[key] = agg
        return sides

    def transform_components(self) -> dict[str, Stateful]:
        return {t.name: t for t in self.transforms}
