"""Physically remove neurons that structured pruning made dead.

For a chain ``Linear -> ReLU -> Linear -> ... -> Linear`` (an ``nn.Sequential``, like the
registry's ``mlp``), hidden unit ``j`` between layers ``k`` and ``k+1`` can be removed when
nothing downstream reads it (column ``j`` of ``W[k+1]`` is zero) or it outputs a constant
(row ``j`` of ``W[k]`` is zero: its value ``relu(b[k][j])`` is folded into ``b[k+1]``).
The network's inputs and outputs are never removed, so the smaller model is a drop-in
replacement: the same function (up to float rounding) with fewer parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_ELEMENTWISE = (nn.ReLU, nn.Identity)


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "linear" | "relu" | "identity"
    in_features: int = 0
    out_features: int = 0


def _check_chain(model: nn.Module) -> list[nn.Module]:
    if not isinstance(model, nn.Sequential):
        raise ValueError("shrinking supports nn.Sequential chains of Linear and ReLU layers")
    layers = list(model)
    if not all(isinstance(m, (nn.Linear, *_ELEMENTWISE)) for m in layers):
        kinds = sorted({type(m).__name__ for m in layers})
        raise ValueError(f"shrinking supports Linear and ReLU layers only, got {kinds}")
    return layers


def _activation(layers: list[nn.Module], start: int, stop: int):  # type: ignore[no-untyped-def]
    """The elementwise function applied between two Linear layers."""
    relu = any(isinstance(m, nn.ReLU) for m in layers[start:stop])
    return (lambda b: torch.clamp(b, min=0)) if relu else (lambda b: b)


def shrink_sequential(model: nn.Module) -> tuple[nn.Sequential, list[LayerSpec]]:
    """A smaller equivalent copy of ``model``; also its layer specs (for rebuilding it)."""
    layers = _check_chain(model)
    linear_at = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    weights = [layers[i].weight.detach().clone() for i in linear_at]
    biases = [layers[i].bias.detach().clone() if layers[i].bias is not None
              else torch.zeros(layers[i].out_features) for i in linear_at]
    for k in range(len(weights) - 1):
        act = _activation(layers, linear_at[k] + 1, linear_at[k + 1])
        dead_row = ~weights[k].any(dim=1)
        # Constant units: fold their output into the next layer's bias before removal.
        biases[k + 1] += weights[k + 1][:, dead_row] @ act(biases[k][dead_row])
        keep = ~dead_row & weights[k + 1].any(dim=0)
        weights[k], biases[k] = weights[k][keep], biases[k][keep]
        weights[k + 1] = weights[k + 1][:, keep]
    return _rebuild(layers, linear_at, weights, biases)


def _rebuild(layers: list[nn.Module], linear_at: list[int], weights: list[torch.Tensor],
             biases: list[torch.Tensor]) -> tuple[nn.Sequential, list[LayerSpec]]:
    modules: list[nn.Module] = []
    specs: list[LayerSpec] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            w, b = weights[linear_at.index(i)], biases[linear_at.index(i)]
            new = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                new.weight.copy_(w)
                new.bias.copy_(b)
            modules.append(new)
            specs.append(LayerSpec("linear", w.shape[1], w.shape[0]))
        else:
            modules.append(type(layer)())
            specs.append(LayerSpec("relu" if isinstance(layer, nn.ReLU) else "identity"))
    return nn.Sequential(*modules), specs


def build_from_specs(specs: list[LayerSpec]) -> nn.Sequential:
    """An untrained module with the given layer specs (weights are loaded afterwards)."""
    factories = {"linear": lambda s: nn.Linear(s.in_features, s.out_features),
                 "relu": lambda s: nn.ReLU(), "identity": lambda s: nn.Identity()}
    unknown = {s.kind for s in specs} - set(factories)
    if unknown:
        raise ValueError(f"unknown layer kinds {sorted(unknown)}")
    return nn.Sequential(*[factories[s.kind](s) for s in specs])
