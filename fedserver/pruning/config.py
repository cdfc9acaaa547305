"""``PruningConfig``: the ``[pruning]`` table of a run configuration, validated once.

Every default lives here (one place). A configuration is a frozen dataclass, so two
configurations are equal iff all fields are equal; ``from_dict(to_dict(c)) == c``.
``to_dict`` leaves out keys whose value is ``None`` so the result can be written as TOML
(which has no null); ``from_dict`` rejects unknown keys. Construction raises ``ValueError``
whose message starts with the offending key, so a typo in a TOML file is reported by name.

Round keys are 1-based round numbers (the phases of docs/pruning.md, "The method"):
``[1, start_round)`` dense, ``[start_round, end_round]`` prune (a new mask every
``prune_every`` rounds, the last one at ``end_round`` so the target is reached there),
then ``refine_rounds`` refine cycles, then fine-tune with the mask frozen.

>>> PruningConfig.from_dict({"enabled": True, "schedule": "cubic", "end_round": 9}).end_round
9
>>> PruningConfig(target_sparsity=1.0)
Traceback (most recent call last):
...
ValueError: target_sparsity must be a number in [0.0, 0.99], got 1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fedserver.pruning.combine import COMBINERS
from fedserver.pruning.schedule import SCHEDULES, SparsitySchedule, make_schedule

__all__ = ["MAX_SPARSITY", "PruningConfig"]

MAX_SPARSITY = 0.99  # a fully pruned tensor cannot be trained or exported

Scheme = Literal["server-mask", "client-scores"]
Granularity = Literal["unstructured", "structured"]
StructuredAxis = Literal["columns", "rows", "half-columns", "half-rows"]
Allocation = Literal["uniform", "global"]
ScoreKind = Literal["magnitude", "saliency"]
ClientTraining = Literal["auto", "reduced", "masked"]


def _choice(key: str, value: object, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {sorted(allowed)}, got {value!r}")


def _int(key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")


def _fraction(key: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{key} must be a number in [{low}, {high}], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class PruningConfig:
    """Federated pruning settings (see the module docstring for the phase layout).

    ``scheme``: ``"server-mask"`` scores the aggregated weights on the server;
    ``"client-scores"`` combines importance scores that clients compute on their data
    (``score_kind``), using ``combine`` (``"weighted-sum"`` or ``"vote"``).
    ``granularity="structured"`` prunes whole ``structured_axis`` groups of 2-D ``[out, in]``
    weights (columns by default: the paper found column pruning best) and whole output
    channels of convolution weights; ``"half-columns"`` / ``"half-rows"`` prune each half of a
    column / row on its own (the paper's half patterns). ``client_training`` tells clients
    how to train under the mask (``fedcore.client_training``: ``"auto"`` trains the
    physically reduced model when the mask removes whole units, ``"reduced"`` whenever the
    model can be sliced, ``"masked"`` always the masked dense model); it changes the
    update only by float rounding, so it is not part of the checkpointed configuration.
    ``vote_top_fraction=None`` lets each client vote for
    the top ``1 − sparsity`` groups of the mask step being voted on.
    """

    enabled: bool = False
    scheme: Scheme = "server-mask"
    granularity: Granularity = "unstructured"
    structured_axis: StructuredAxis = "columns"
    allocation: Allocation = "uniform"
    schedule: str = "step"
    target_sparsity: float = 0.5
    initial_sparsity: float = 0.0
    start_round: int = 1
    end_round: int = 10
    prune_every: int = 1
    refine_rounds: int = 0
    score_kind: ScoreKind = "magnitude"
    combine: str = "weighted-sum"
    vote_top_fraction: float | None = None
    # Weight tensors never pruned, e.g. the first layer under structured column pruning
    # (its columns are the model's input features).
    exclude: tuple[str, ...] = ()
    client_training: ClientTraining = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(str(name) for name in self.exclude))
        if not isinstance(self.enabled, bool):
            raise ValueError(
                f"enabled must be a bool, got {self.enabled!r}")
        self._check_choices()
        self._check_sparsities()
        self._check_rounds()
        self.build_schedule()  # surfaces schedule-specific errors (named by config key)

    def _check_choices(self) -> None:
        _choice("scheme", self.scheme, get_args(Scheme))
        _choice("granularity", self.granularity, get_args(Granularity))
        _choice("structured_axis", self.structured_axis, get_args(StructuredAxis))
        _choice("allocation", self.allocation, get_args(Allocation))
        _choice("schedule", self.schedule, list(SCHEDULES))
        _choice("score_kind", self.score_kind, get_args(ScoreKind))
        _choice("client_training", self.client_training, get_args(ClientTraining))
        _choice("combine", self.combine, list(COMBINERS))
        if self.scheme == "server-mask" and self.score_kind != "magnitude":
            raise ValueError("score_kind must be 'magnitude' with scheme 'server-mask' "
                             "(the server has no gradients to compute saliency)")

    def _check_sparsities(self) -> None:
        _fraction("target_sparsity", self.target_sparsity, 0.0, MAX_SPARSITY)
        _fraction("initial_sparsity", self.initial_sparsity, 0.0, self.target_sparsity)
        if self.vote_top_fraction is not None:
            _fraction("vote_top_fraction", self.vote_top_fraction, 0.0, 1.0)
            if self.vote_top_fraction == 0:
                raise ValueError("vote_top_fraction must be > 0 (every client votes for "
                                 "at least one group)")
        for key in ("target_sparsity", "initial_sparsity", "vote_top_fraction"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, float(value))

    def _check_rounds(self) -> None:
        _int("start_round", self.start_round, 1)
        _int("end_round", self.end_round, self.start_round)
        _int("prune_every", self.prune_every, 1)
        _int("refine_rounds", self.refine_rounds, 0)
        if (self.end_round - self.start_round) % self.prune_every:
            raise ValueError(
                f"end_round must be start_round plus a multiple of prune_every so the last "
                f"prune step lands on it, got start_round={self.start_round}, "
                f"end_round={self.end_round}, prune_every={self.prune_every}")

    def build_schedule(self) -> SparsitySchedule:
        """The sparsity schedule named by ``schedule``, built from this configuration."""
        return make_schedule(
            self.schedule, start_round=self.start_round, end_round=self.end_round,
            initial_sparsity=self.initial_sparsity, target_sparsity=self.target_sparsity,
            prune_every=self.prune_every)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PruningConfig:
        """Build from a parsed TOML table; unknown keys are rejected by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown pruning configuration key "
                             f"(known: {sorted(known)})")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-ready values; ``None`` values are omitted."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items() if v is not None}

    def mask_settings(self) -> dict[str, Any]:
        """``to_dict()`` without ``client_training``: the settings that decide the masks,
        which checkpoints record and a resume must match."""
        settings = self.to_dict()
        settings.pop("client_training")
        return settings
