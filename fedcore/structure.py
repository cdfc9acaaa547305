"""Structural slicing: which units a pruning mask removes, and where every kept weight is.

One derivation serves local training under structured pruning
(:mod:`fedcore.reduced_training`) and ``fedprune export --shrink`` (:mod:`fedprune.shrink`),
so the model a client trains and the model that is exported are cut the same way.

Scope: an ``nn.Sequential`` whose weighted layers are ``Linear``, ``Conv1d`` or ``Conv2d``
(``groups == 1``). Between two weighted layers only channel-wise ops (activations, pools)
and at most one ``Flatten`` (a convolution feeding a linear layer) may appear; before the
first weighted layer anything :mod:`fedcore.layer_specs` describes (e.g. ``Unflatten``).
Any other model raises :class:`UnsupportedStructure`, and callers fall back to masked
dense training. No model with buffers (norm statistics) is reduced: *(ours)* a norm layer
between two layers would need its own rule for constant units, so it is refused rather
than approximated.

At each boundary between a producer ``P`` and a consumer ``C`` (weight masks; a tensor
without a mask is all kept), a unit ``j`` (a neuron; a channel of a convolution, seen by
a linear consumer after ``Flatten`` as a block of ``h * w`` features) is

- **dead** if no unmasked weight of a *live* output of ``C`` reads it. Live outputs are
  all outputs of the last layer and the kept units of the next boundary (found from the
  back), because a dead unit's gradient is exactly zero. Removed; ``P``'s row and bias at
  ``j`` get no data gradient, so they are *passive*: they only decay (weight decay,
  FedProx) and the caller applies that in closed form.
- **constant** if ``P``'s whole row (every incoming weight) is masked and ``j`` is not
  dead: it outputs ``act(b_P[j])`` whatever the input. Removed from both layers; a carry
  (:mod:`fedcore.reduced_model`) keeps ``b_P[j]`` and ``C``'s weights that read it.
  *Inert* constants are dead too: when a ``ReLU`` follows ``P`` directly, only ops with
  f(0) = 0 follow it and ``b_P[j] <= 0``, the unit outputs exactly 0 and every gradient
  through it is 0 (ReLU's derivative at ``x <= 0`` is 0), so ``b_P[j]`` and ``C``'s
  weights reading ``j`` are passive. Passive values only scale by a factor
  (:func:`fedcore.reduced_training.passive_factor`), so the bias stays ``<= 0`` as long as
  that factor does; the trainer checks it and re-plans with every constant carried if not.
- **kept** otherwise. A boundary that would keep nothing is not reduced.

The network's inputs and outputs are never removed. Masked entries that remain inside the
reduced tensors (partial rows, half-row groups, unstructured masks) form the *residual*
mask, enforced in the reduced model like any mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from fedcore.layer_specs import LayerSpec, UnsupportedLayer, spec_of
from fedcore.reduced_model import CarrySpec, ReducedSequential, carry_names

__all__ = ["Boundary", "StructurePlan", "TensorSlice", "UnsupportedStructure",
           "plan_structure"]

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_CHANNELWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.Identity,
                nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_ZERO_PRESERVING = (nn.ReLU, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.Identity, nn.MaxPool1d,
                    nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.Flatten)

Params = dict[str, np.ndarray]


class UnsupportedStructure(ValueError):
    """The model's layout is outside what structural slicing handles (see module doc)."""


@dataclass(frozen=True)
class TensorSlice:
    """``source[np.ix_(*index)]``: index arrays for the leading axes, the rest whole."""

    source: str
    index: tuple[np.ndarray, ...]

    def take(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(array)[np.ix_(*self.index)])


@dataclass(frozen=True)
class Boundary:
    producer: str
    consumer: str
    units: int
    kept: np.ndarray
    constant: np.ndarray
    block: int = 1  # consumer input features per unit
    spatial: tuple[int, ...] = ()  # producer's output map size (() for a linear producer)

    @property
    def removed(self) -> int:
        return self.units - len(self.kept)


@dataclass(frozen=True)
class StructurePlan:
    """The reduced model's layout and, per reduced tensor, its place in the dense model."""

    layers: tuple[LayerSpec, ...]
    carries: tuple[CarrySpec, ...]
    slices: Mapping[str, TensorSlice]  # reduced parameter name -> dense slice
    residual: Mapping[str, np.ndarray]  # reduced parameter name -> mask (not all kept)
    passive: Mapping[str, np.ndarray]  # dense name -> unmasked entries outside the slices
    boundaries: tuple[Boundary, ...]
    dense_size: int = 0
    reduced_size: int = 0

    @property
    def removed_units(self) -> int:
        return sum(b.removed for b in self.boundaries)

    def take(self, params: Mapping[str, np.ndarray]) -> Params:
        """The reduced model's parameters cut out of dense ``params``."""
        return {name: s.take(params[s.source]).astype(np.float32)
                for name, s in self.slices.items()}

    def build(self, params: Mapping[str, np.ndarray]) -> ReducedSequential:
        """The reduced model holding ``params``' values at the kept coordinates."""
        model = ReducedSequential(self.layers, self.carries)
        values = self.take(params)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(values[name]))
        return model


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise UnsupportedStructure(f"structural slicing needs an nn.Sequential, got "
                                   f"{type(model).__name__}")
    buffers = [n for n, b in model.named_buffers() if torch.is_floating_point(b)]
    if buffers:
        raise UnsupportedStructure(f"models with buffers (norm statistics) are not reduced: "
                                   f"{buffers[:3]}")
    chain = list(model.named_children())
    for name, module in chain:
        try:
            spec_of(name, module)
        except UnsupportedLayer as exc:
            raise UnsupportedStructure(str(exc)) from None
        if isinstance(module, _WEIGHTED[1:]) and module.groups != 1:
            raise UnsupportedStructure(f"layer {name!r}: grouped convolutions are not reduced")
    weighted = [i for i, (_, m) in enumerate(chain) if isinstance(m, _WEIGHTED)]
    if len(weighted) < 1:
        raise UnsupportedStructure("the model has no Linear or Conv layer")
    for a, b in zip(weighted, weighted[1:]):
        between = [m for _, m in chain[a + 1:b]]
        flat = [m for m in between if isinstance(m, nn.Flatten)]
        others = [m for m in between if not isinstance(m, (*_CHANNELWISE, nn.Flatten))]
        if others or len(flat) > 1 or any((f.start_dim, f.end_dim) != (1, -1) for f in flat):
            raise UnsupportedStructure(
                f"between {chain[a][0]!r} and {chain[b][0]!r} only channel-wise ops and one "
                f"Flatten may appear, got {[type(m).__name__ for m in between]}")
    return chain


def _trace(chain: list[tuple[str, nn.Module]], input_shape: tuple[int, ...]
           ) -> list[tuple[int, ...]]:
    """Each module's output shape (without the batch axis) for one zero sample."""
    x = torch.zeros((1, *input_shape))
    shapes = []
    with torch.no_grad():
        for _, module in chain:
            x = module(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def _expand(units: np.ndarray, block: int) -> np.ndarray:
    return (units[:, None] * block + np.arange(block)[None, :]).ravel()


def _zero_preserving(between: list[tuple[str, nn.Module]]) -> bool:
    """A ReLU right after the producer and only ops with f(0) = 0 after it."""
    return bool(between) and type(between[0][1]) is nn.ReLU and all(
        isinstance(m, _ZERO_PRESERVING) for _, m in between[1:])


def _boundary(chain: list[tuple[str, nn.Module]], a: int, b: int, masks: Mapping[str, np.ndarray],
              live_out: np.ndarray, spatial: tuple[int, ...],
              biases: Mapping[str, np.ndarray] | None) -> Boundary:
    (pname, producer), (cname, consumer) = chain[a], chain[b]
    units = int(producer.weight.shape[0])
    width = int(consumer.weight.shape[1])
    if width % units:
        raise UnsupportedStructure(f"{cname!r} reads {width} inputs, not a multiple of "
                                   f"{pname!r}'s {units} outputs")
    block = width // units
    row_pruned = ~masks[f"{pname}.weight"].reshape(units, -1).any(axis=1)
    reads = masks[f"{cname}.weight"][live_out].reshape(len(live_out), units, -1)
    read = reads.any(axis=(0, 2))
    constant = row_pruned & read if producer.bias is not None else np.zeros(units, bool)
    kept = read & ~constant
    if biases is not None and _zero_preserving(chain[a + 1:b]):
        constant &= biases[f"{pname}.bias"] > 0  # the others stay exactly 0: see module doc
    if not kept.any():  # nothing would remain: leave this boundary whole
        kept, constant = np.ones(units, bool), np.zeros(units, bool)
    return Boundary(pname, cname, units, np.flatnonzero(kept), np.flatnonzero(constant),
                    block, spatial if isinstance(producer, _WEIGHTED[1:]) else ())


def _full_masks(model: nn.Module, masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    full = {n: np.ones(s, dtype=bool) for n, s in shapes.items()}
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if name not in shapes or mask.shape != shapes[name]:
            raise ValueError(f"mask {name!r}: no parameter of shape {mask.shape}")
        if mask.ndim < 2:
            raise UnsupportedStructure(f"mask on the 1-D tensor {name!r} is not structural")
        full[name] = mask.astype(bool)
    return full


def plan_structure(model: nn.Module, masks: Mapping[str, np.ndarray], *,
                   input_shape: tuple[int, ...],
                   biases: Mapping[str, np.ndarray] | None = None) -> StructurePlan:
    """Derive the reduced layout of ``model`` under ``masks`` (see the module docstring).

    ``input_shape`` is one sample's shape (it fixes the map sizes of convolutions).
    ``biases`` (dense values by name, e.g. the pulled global model) lets constant units
    whose value is exactly 0 be removed without a carry; ``None`` carries every constant.
    """
    chain = _chain(model)
    full = _full_masks(model, masks)
    shapes = _trace(chain, tuple(input_shape))
    weighted = [i for i, (_, m) in enumerate(chain) if isinstance(m, _WEIGHTED)]
    live = np.arange(chain[weighted[-1]][1].weight.shape[0])
    boundaries: list[Boundary] = []
    for a, b in reversed(list(zip(weighted, weighted[1:]))):
        boundary = _boundary(chain, a, b, full, live, shapes[a][1:], biases)
        boundaries.insert(0, boundary)
        live = boundary.kept
    return _assemble(model, chain, weighted, boundaries, full)


def _assemble(model: nn.Module, chain: list[tuple[str, nn.Module]], weighted: list[int],
              boundaries: list[Boundary], full: Mapping[str, np.ndarray]) -> StructurePlan:
    layers = [spec_of(n, m) for n, m in chain]
    slices: dict[str, TensorSlice] = {}
    carries: list[CarrySpec] = []
    for k, i in enumerate(weighted):
        name, module = chain[i]
        rows, cols = module.weight.shape[:2]
        out_idx = boundaries[k].kept if k < len(boundaries) else np.arange(rows)
        prev = boundaries[k - 1] if k > 0 else None
        in_idx = _expand(prev.kept, prev.block) if prev is not None else np.arange(cols)
        slices[f"{name}.weight"] = TensorSlice(f"{name}.weight", (out_idx, in_idx))
        if module.bias is not None:
            slices[f"{name}.bias"] = TensorSlice(f"{name}.bias", (out_idx,))
        layers[i] = _resized(layers[i], len(out_idx), len(in_idx))
        if prev is not None and len(prev.constant):
            source, weight = carry_names(name)
            slices[source] = TensorSlice(f"{prev.producer}.bias", (prev.constant,))
            slices[weight] = TensorSlice(f"{name}.weight",
                                         (out_idx, _expand(prev.constant, prev.block)))
            carries.append(CarrySpec(prev.producer, name, len(prev.constant), prev.spatial))
    return _finish(model, layers, carries, slices, boundaries, full)


def _resized(spec: LayerSpec, out: int, inp: int) -> LayerSpec:
    args = dict(spec.args)
    if spec.kind == "linear":
        args.update(out_features=out, in_features=inp)
    else:
        args.update(out_channels=out, in_channels=inp)
    return replace(spec, args=args)


def _finish(model: nn.Module, layers: list[LayerSpec], carries: list[CarrySpec],
            slices: dict[str, TensorSlice], boundaries: list[Boundary],
            full: Mapping[str, np.ndarray]) -> StructurePlan:
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    covered = {n: np.zeros(s, dtype=bool) for n, s in shapes.items()}
    residual = {}
    for name, s in slices.items():
        covered[s.source][np.ix_(*s.index)] = True
        sub = s.take(full[s.source])
        if not sub.all():
            residual[name] = sub
    passive = {n: full[n] & ~covered[n] for n in shapes if (full[n] & ~covered[n]).any()}
    return StructurePlan(
        layers=tuple(layers), carries=tuple(carries), slices=slices, residual=residual,
        passive=passive, boundaries=tuple(boundaries),
        dense_size=sum(math.prod(s) for s in shapes.values()),
        reduced_size=sum(int(c.sum()) for c in covered.values()))
