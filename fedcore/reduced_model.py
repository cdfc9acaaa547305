"""``ReducedSequential``: the physically smaller model that structured pruning leaves.

It is an ``nn.Sequential`` of the kept widths (built from :class:`LayerSpec` s, so no
registry factory is needed) plus *carries*. A carry stands for the units between two
weighted layers whose incoming weights are all pruned (a pruned row of a linear weight, a
pruned output channel of a convolution) but that the next layer still reads: such a unit
outputs the constant ``act(bias)`` (a constant map for a channel), which the masked dense
model feeds into the next layer and keeps training. The carry holds those biases
(``source``, ``[units]``) and the next layer's weights that read them (``weight``), and in
each forward adds their contribution, computed on one sample (the ops between the two
layers applied to the constant, then the consumer's linear map without bias), broadcast to
the batch. So the reduced model computes exactly the masked dense model's function and
autograd gives exactly its gradients, at the cost of one sample's worth of the carried
part per step instead of a batch's.

Invariant: parameters are the layers' own (``<layer>.weight``/``.bias``, the names of the
dense model) plus ``carry_<consumer>_source`` / ``carry_<consumer>_weight`` per carry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fedcore.layer_specs import LayerSpec, UnsupportedLayer, module_from_spec

__all__ = ["CarrySpec", "ReducedSequential", "carry_names"]

_CONSUMERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class CarrySpec:
    """Constant units of ``producer`` read by ``consumer``; ``spatial`` = their map size."""

    producer: str
    consumer: str
    units: int
    spatial: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"producer": self.producer, "consumer": self.consumer, "units": self.units,
                "spatial": list(self.spatial)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CarrySpec:
        return cls(str(d["producer"]), str(d["consumer"]), int(d["units"]),
                   tuple(int(s) for s in d.get("spatial", ())))


def carry_names(consumer: str) -> tuple[str, str]:
    """Parameter names of the carry into ``consumer``: (source biases, reading weights)."""
    return f"carry_{consumer}_source", f"carry_{consumer}_weight"


class ReducedSequential(nn.Sequential):
    """A chain of ``layers`` plus ``carries`` (see the module docstring)."""

    def __init__(self, layers: Sequence[LayerSpec], carries: Sequence[CarrySpec] = ()) -> None:
        super().__init__(OrderedDict((s.name, module_from_spec(s)) for s in layers))
        self.layer_specs = tuple(layers)
        self.carry_specs = tuple(carries)
        names = list(self._modules)
        self._carry_at: dict[int, tuple[CarrySpec, int]] = {}
        for spec in carries:
            if spec.producer not in names or spec.consumer not in names:
                raise UnsupportedLayer(f"carry {spec}: unknown layer")
            p, q = names.index(spec.producer), names.index(spec.consumer)
            if not (p < q and isinstance(self[q], _CONSUMERS)) or spec.units < 1 \
                    or q in self._carry_at:
                raise UnsupportedLayer(f"carry {spec}: not a carry into a later weighted layer")
            self._carry_at[q] = (spec, p)
            source, weight = carry_names(spec.consumer)
            self.register_parameter(source, nn.Parameter(torch.zeros(spec.units)))
            self.register_parameter(weight, nn.Parameter(torch.zeros(self._weight_shape(q))))

    def _weight_shape(self, q: int) -> tuple[int, ...]:
        spec, p = self._carry_at[q]
        consumer = self[q]
        if isinstance(consumer, nn.Linear):
            with torch.no_grad():
                width = self._carried_input(p, q, torch.zeros(spec.units)).shape[1]
            return (consumer.out_features, width)
        return (consumer.out_channels, spec.units, *consumer.kernel_size)

    def _carried_input(self, p: int, q: int, source: torch.Tensor) -> torch.Tensor:
        spec = self._carry_at[q][0]
        x = source.view(1, spec.units, *([1] * len(spec.spatial)))
        x = x.expand(1, spec.units, *spec.spatial)
        for op in list(self)[p + 1:q]:
            x = op(x)
        return x

    def carry(self, q: int) -> torch.Tensor:
        """The carried units' contribution to layer ``q``'s output (one sample's shape)."""
        spec, p = self._carry_at[q]
        source, weight = (getattr(self, n) for n in carry_names(spec.consumer))
        x = self._carried_input(p, q, source)
        consumer = self[q]
        if isinstance(consumer, nn.Linear):
            return F.linear(x, weight)
        return consumer._conv_forward(x, weight, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for q, layer in enumerate(self):
            x = layer(x)
            if q in self._carry_at:
                x = x + self.carry(q)
        return x

    def folded(self) -> ReducedSequential:
        """An equal model whose carries into linear layers are folded into their biases.

        For inference only: a linear consumer's carry is one constant vector, so adding it
        to the bias removes the carry's parameters. A carry into a convolution is a
        spatially varying map (zero padding sees the constant only inside the image), so
        it stays.
        """
        names = list(self._modules)
        fold = {q for q, (spec, _) in self._carry_at.items()
                if isinstance(self[q], nn.Linear) and self[q].bias is not None}
        keep = [spec for q, (spec, _) in self._carry_at.items() if q not in fold]
        out = ReducedSequential(self.layer_specs, keep)
        state = {k: v for k, v in self.state_dict().items()
                 if not any(k in carry_names(names[q]) for q in fold)}
        with torch.no_grad():
            for q in fold:
                bias = f"{names[q]}.bias"
                state[bias] = state[bias] + self.carry(q).reshape(-1)
        out.load_state_dict(state)
        return out
