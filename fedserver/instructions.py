"""What clients are told for one round, merged from the program's transforms.

Each transform's ``instructions(round)`` returns a partial mapping of these fields; the
program merges them and refuses two transforms setting one field, so no instruction is
silently overwritten. The task factory fills every ``Task`` of the round from the result,
which is how a per-round choice (a mask, a score request, a cluster count in the uplink
encoding) reaches clients without a line changed in the task factory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcore.model_codec import Encoding


@dataclass(frozen=True)
class RoundInstructions:
    round: int
    encoding: Encoding  # how clients encode their update
    mask_id: str = ""  # the mask clients train under ("" = dense)
    masks: dict[str, np.ndarray] | None = None
    proximal_mu: float = 0.0
    compute_scores: bool = False
    score_kind: str = ""
    score_granularity: dict[str, str] = field(default_factory=dict)
    clip_norm: float = 0.0  # DP: clients clip their delta to this L2 norm (0: no clipping)
    client_noise_stddev: float = 0.0  # distributed DP: clients add N(0, s^2) after clipping
    personal_layers: tuple[str, ...] = ()  # FedPer: tensors that never leave the clients
    finetune_epochs: int = 0  # FedAvg + FT: fine-tuning epochs before personalized evaluation
    report_initial_loss: bool = False  # q-FFL: clients report the pulled model's local loss
    client_training: str = ""  # pruning: "auto" | "reduced" | "masked" ("" = auto)
    clusters: int = 0  # FedCompress: k of weight clustering during training (0: none)
    cluster_epochs: int = 0  # of the local epochs, the last ones train clustered
    centroid_learning_rate: float = 0.0
    report_representation: bool = False  # clients return a representation summary
    representation_dim: int = 0  # its projected width (0: the full embedding width)
    representation_seed: int = 0
    downlink_clusters: int = 0  # the broadcast's clustered tensors go as codebook + indices

    @property
    def side_keys(self) -> frozenset[str]:
        keys = {"scores"} if self.compute_scores else set()
        if self.report_representation:
            keys.add("representation")
        return frozenset(keys)


_FIELDS = {f.name for f in dataclasses.fields(RoundInstructions)} - {"round"}


def merge_instructions(round: int, base: Mapping[str, Any],
                       parts: Iterable[tuple[str, Mapping[str, Any]]]) -> RoundInstructions:
    """``base`` (defaults any transform may override once) updated by each named part."""
    merged, owner = dict(base), {}
    for name, part in parts:
        for key, value in part.items():
            if key not in _FIELDS:
                raise ValueError(f"transform {name!r} sets unknown instruction {key!r}")
            if key in owner:
                raise ValueError(f"transforms {owner[key]!r} and {name!r} both set {key!r}")
            owner[key] = name
            merged[key] = value
    return RoundInstructions(round=round, **merged)
