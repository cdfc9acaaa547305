"""The FedProx proximal term as a training hook (Li et al., 2020).

Local objective gains ``mu/2 * ||w - w_ref||^2`` over all trainable parameters, pulling
heterogeneous clients towards the global model they started from. The term is
differentiated but not reported (see :mod:`fedcore.train_hooks`); under a mask its
gradient at pruned positions is removed like every other term, so it cannot revive them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedcore.params import check_named_arrays, get_parameters
from fedcore.train_hooks import TrainHook

__all__ = ["ProximalTerm"]


class ProximalTerm(TrainHook):
    """``mu/2 * ||w - reference||^2``; ``reference_params`` names every model parameter.

    ``reference_params`` is usually the global model as pulled from the server (same
    names/shapes as :func:`fedcore.params.get_parameters`, buffers included, though only
    parameters enter the term); pass ``get_parameters(model)`` to anchor at the start.
    It is checked against the model and bound to its parameters in
    :meth:`before_training`. A zero ``mu`` is refused: "no proximal term" is spelled by
    not adding the hook, which keeps the step free of a ``+ 0 * prox`` that would still
    cost a pass over the weights.
    """

    def __init__(self, *, mu: float, reference_params: Mapping[str, np.ndarray]) -> None:
        if not (np.isfinite(mu) and mu > 0):
            raise ValueError(f"proximal mu must be finite and > 0, got {mu!r}")
        self.mu = float(mu)
        self._reference_params = reference_params
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def before_training(self, model: nn.Module) -> None:
        shapes = {n: v.shape for n, v in get_parameters(model).items()}  # incl. buffers
        arrays = check_named_arrays(shapes, self._reference_params, what="reference_params")
        params = dict(model.named_parameters())
        self._pairs = [(p, torch.as_tensor(arrays[name], dtype=p.dtype, device=p.device))
                       for name, p in params.items()]

    def extra_loss(self, model: nn.Module) -> torch.Tensor:
        if self._pairs is None:
            raise RuntimeError("ProximalTerm.extra_loss before before_training")
        prox = sum(((p - ref) ** 2).sum() for p, ref in self._pairs)
        return 0.5 * self.mu * prox  # type: ignore[return-value]
