"""Personalization: personal layers that never leave the clients, and fine-tuned evaluation.

Two methods, selectable together or apart (``[personalization]``, docs/robustness.md):

* **Personal layers** (FedPer, Arivazhagan et al. 2019): the named tensors (``"head"``: the
  model's last layer) are trained by each client on its own copy and never sent; clients
  push an exact-zero delta for them. This transform keeps the invariant on the server side
  too: after every round the global values of those tensors are reset to their initial
  values (times the pruning mask, so pruned positions stay zero), so whatever a client
  sends for them (a stale or hostile client) and whatever a server optimizer or central DP
  noise does to them never reaches the global model.
* **Fine-tuning** (FedAvg + FT): at federated evaluation every client also reports the
  accuracy of the global model fine-tuned for ``finetune_epochs`` on its training split.

Either one makes federated evaluation report ``personalized_accuracy`` next to the global
model's ``accuracy`` for every client, which the fairness report summarizes side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedserver.model_state import ModelState
from fedserver.transforms.base import RoundResult, StatelessTransform

HEAD = "head"


def resolve_personal_layers(names: Sequence[str], params: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """Tensor names in model order; ``"head"`` is every tensor of the last module (the one
    owning the model's last tensor, e.g. ``fc3.weight`` and ``fc3.bias``). A name that is
    not a tensor of the model is an error naming the key, not a silently shared layer."""
    order = list(params)
    wanted: set[str] = set()
    for name in names:
        if name == HEAD:
            module = order[-1].rpartition(".")[0]
            wanted |= {n for n in order if n.rpartition(".")[0] == module}
        elif name in params:
            wanted.add(name)
        else:
            raise ValueError(f"personalization.personal_layers: {name!r} is not a tensor of the "
                             f"model (tensors: {order}; or 'head' for the last layer)")
    if wanted and len(wanted) == len(order):
        raise ValueError("personalization.personal_layers: every tensor would be personal; "
                         "nothing would be federated")
    return tuple(n for n in order if n in wanted)


class Personalization(StatelessTransform):
    """Tells clients the personal layers and fine-tuning epochs; pins the global values of
    the personal layers to their initial values (the invariant above)."""

    name = "personalization"

    def __init__(self, *, personal_layers: Sequence[str], finetune_epochs: int,
                 initial: Mapping[str, np.ndarray]) -> None:
        if finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be >= 0, got {finetune_epochs!r}")
        self.personal_layers = resolve_personal_layers(personal_layers, initial)
        self.finetune_epochs = int(finetune_epochs)
        self._pinned = {n: np.array(initial[n], copy=True) for n in self.personal_layers}

    def instructions(self, round: int) -> dict[str, Any]:
        return {"personal_layers": self.personal_layers, "finetune_epochs": self.finetune_epochs}

    def apply(self, round: int, model: ModelState,
              result: RoundResult) -> tuple[ModelState, dict[str, Any]]:
        if not self._pinned:
            return model, {}
        masks = model.masks or {}
        params = {**model.params, **{n: (v * masks[n] if n in masks else v).astype(v.dtype)
                                     for n, v in self._pinned.items()}}
        return model.replace(params=params), {}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "personal_layers": list(self.personal_layers),
                "finetune_epochs": self.finetune_epochs}
