"""Layer specs: a JSON-ready description of one torch layer, and back.

Why: a physically reduced model (:mod:`fedcore.reduced_model`) has layer widths no registry
factory knows, so an exported artifact must say how to rebuild it without importing code.
A :class:`LayerSpec` is ``(name, kind, args)`` with plain ints/floats/bools/lists in
``args``; ``module_from_spec(spec_of(m))`` builds a module of the same type and shape as
``m`` (weights are loaded separately). Only the kinds below exist; any other module raises
:class:`UnsupportedLayer` (a ``ValueError``), and an unknown kind or argument in a spec
read from a file is refused the same way, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["LayerSpec", "UnsupportedLayer", "module_from_spec", "spec_of"]


class UnsupportedLayer(ValueError):
    """A module (or spec kind) that layer specs cannot describe."""


@dataclass(frozen=True)
class LayerSpec:
    name: str
    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "args": dict(self.args)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _conv_args(m: nn.Module) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": _plain(m.kernel_size), "stride": _plain(m.stride),
            "padding": _plain(m.padding), "dilation": _plain(m.dilation),
            "groups": m.groups, "bias": m.bias is not None, "padding_mode": m.padding_mode}


def _pool_args(m: nn.Module) -> dict[str, Any]:
    args = {"kernel_size": _plain(m.kernel_size), "stride": _plain(m.stride),
            "padding": _plain(m.padding), "ceil_mode": m.ceil_mode}
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
        args["dilation"] = _plain(m.dilation)
    else:
        args["count_include_pad"] = m.count_include_pad
    return args


def _no_args(m: nn.Module) -> dict[str, Any]:
    return {}


# kind -> (module type, describe); the module's constructor takes the described args
_KINDS: dict[str, tuple[type[nn.Module], Callable[[nn.Module], dict[str, Any]]]] = {
    "linear": (nn.Linear, lambda m: {"in_features": m.in_features,
                                     "out_features": m.out_features, "bias": m.bias is not None}),
    "conv1d": (nn.Conv1d, _conv_args),
    "conv2d": (nn.Conv2d, _conv_args),
    "maxpool1d": (nn.MaxPool1d, _pool_args),
    "maxpool2d": (nn.MaxPool2d, _pool_args),
    "avgpool1d": (nn.AvgPool1d, _pool_args),
    "avgpool2d": (nn.AvgPool2d, _pool_args),
    "flatten": (nn.Flatten, lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}),
    "unflatten": (nn.Unflatten, lambda m: {"dim": m.dim,
                                           "unflattened_size": _plain(m.unflattened_size)}),
    "relu": (nn.ReLU, _no_args),
    "tanh": (nn.Tanh, _no_args),
    "sigmoid": (nn.Sigmoid, _no_args),
    "gelu": (nn.GELU, lambda m: {"approximate": m.approximate}),
    "leaky_relu": (nn.LeakyReLU, lambda m: {"negative_slope": m.negative_slope}),
    "identity": (nn.Identity, _no_args),
}
_BY_TYPE = {cls: kind for kind, (cls, _) in _KINDS.items()}
_TUPLE_ARGS = ("kernel_size", "stride", "padding", "dilation", "unflattened_size")


def spec_of(name: str, module: nn.Module) -> LayerSpec:
    """The spec of ``module`` (exact type match: a subclass may change the maths)."""
    kind = _BY_TYPE.get(type(module))
    if kind is None:
        raise UnsupportedLayer(f"layer {name!r}: {type(module).__name__} has no layer spec "
                               f"(supported: {sorted(_KINDS)})")
    return LayerSpec(name, kind, _KINDS[kind][1](module))


def module_from_spec(spec: LayerSpec) -> nn.Module:
    """An untrained module for ``spec``; its args are checked against the kind's."""
    if spec.kind not in _KINDS:
        raise UnsupportedLayer(f"layer {spec.name!r}: unknown kind {spec.kind!r}")
    cls, describe = _KINDS[spec.kind]
    args = {k: tuple(v) if k in _TUPLE_ARGS and isinstance(v, list) else v
            for k, v in spec.args.items()}
    try:
        module = cls(**args)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UnsupportedLayer(f"layer {spec.name!r}: bad {spec.kind} args {dict(spec.args)}: "
                               f"{exc}") from None
    if describe(module) != {k: _plain(v) for k, v in args.items()}:
        raise UnsupportedLayer(f"layer {spec.name!r}: {spec.kind} args {dict(spec.args)} are "
                               f"incomplete (expected keys {sorted(describe(module))})")
    return module
