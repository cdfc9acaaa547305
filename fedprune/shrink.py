"""Physically remove the units that structured pruning left dead or constant (export).

The cut is :func:`fedcore.structure.plan_structure`, the same derivation clients use to
train the reduced model, applied to the trained model's exact zeros as its mask: a hidden
unit (neuron or convolution channel) goes when nothing downstream reads it or when all its
incoming weights are zero. A constant unit's value ``act(b)`` still reaches the next layer:
into a linear layer it is folded into the bias; into a convolution it stays a carry (zero
padding makes its contribution vary across the image, see :mod:`fedcore.reduced_model`).
The network's inputs and outputs are never removed, so the smaller model is a drop-in
replacement: the same function (up to float rounding) with fewer parameters. Models that
the derivation does not handle are refused with
:class:`~fedcore.structure.UnsupportedStructure` (a ``ValueError``) naming why.
"""

from __future__ import annotations

from torch import nn

from fedcore.params import get_parameters
from fedcore.reduced_model import ReducedSequential
from fedcore.structure import plan_structure

__all__ = ["shrink_sequential"]


def shrink_sequential(model: nn.Module, *, input_shape: tuple[int, ...]) -> ReducedSequential:
    """A smaller equivalent copy of ``model`` (``input_shape``: one sample's shape).

    Its ``layer_specs`` and ``carry_specs`` rebuild it without the model registry.
    """
    params = get_parameters(model)
    zeros_as_mask = {name: a != 0 for name, a in params.items() if a.ndim >= 2}
    plan = plan_structure(model, zeros_as_mask, input_shape=input_shape, biases=params)
    return plan.build(params).folded().eval()
