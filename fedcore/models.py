"""Model registry: one name -> one deterministic model factory.

Contract:

- A *factory* is a zero-argument callable returning an ``nn.Module`` with float32
  parameters. ``build_model(name, seed=s)`` runs it as if ``torch.manual_seed(s)`` had
  been called just before, so ``build_model("mlp", seed=0)`` is bit-identical to
  ``torch.manual_seed(0); <build the W1 MLP>`` (docs/workloads.md, W1). The global RNG state is
  saved and restored around construction (``torch.random.fork_rng``), so callers'
  randomness is untouched. Construction is serialized by a lock; another thread drawing
  from the global torch RNG *during* a build could still observe the temporary seed.
- ``name`` is either a registered name or an entry point ``"package.module:function"``
  (see :mod:`fedcore.entrypoints`). Two processes that build the same (name, seed) get the
  same initial weights, which is what lets a coordinator and its clients agree on shapes
  and on the round-0 model without shipping it.
- Whoever builds a model whose name came from someone else (a client building what the
  coordinator names, a tool loading a ``.fpm`` file) passes ``allowed``: then an entry
  point outside it raises :class:`ModelNotAllowed` before anything is imported (registry
  names are always fine: they import nothing). ``allowed=None`` is for names from the
  caller's own configuration.
- ``register_model`` refuses to replace an existing name (no silent overrides); looking
  up an unknown name raises :class:`UnknownModelError` (a ``ValueError``) listing the
  known names.

Built-ins take 64 input features and produce 10 logits (the W1 digits task):
``"mlp"`` = 64 -> 256 -> 256 -> 10 with ReLU (85,002 parameters), ``"mlp-wide"`` =
64 -> 2048 -> 2048 -> 10 with ReLU (4,349,962 parameters; workload W5, where the client
cost of structured pruning is visible) and ``"cnn"`` = the 64
features seen as a 1x8x8 image, conv 1->16 3x3, conv 16->32 3x3, 2x2 max-pool, linear
512 -> 10 (no BatchNorm, so every tensor is a weight or a bias).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection

import torch
from torch import nn

from fedcore.entrypoints import load_entrypoint
from fedcore.text import clip

__all__ = ["ModelNotAllowed", "UnknownModelError", "build_model", "check_allowed",
           "model_names", "register_model"]

ModelFactory = Callable[[], nn.Module]


class UnknownModelError(ValueError):
    """A model name that is neither registered nor an entry point was requested."""


class ModelNotAllowed(ValueError):
    """An entry point someone else named is not in the builder's allowlist."""


def check_allowed(name: str, allowed: Collection[str], *, named_by: str,
                  key: str = "allowed_models") -> None:
    """Raise :class:`ModelNotAllowed` for an entry point ``name`` not in ``allowed``
    (nothing is imported either way)."""
    if ":" in name and name not in allowed:
        raise ModelNotAllowed(
            f"refusing model {clip(name)!r} named by {named_by}: entry points must be listed "
            f"in {key} (nothing was imported)")


def _mlp() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(64, 256),
            relu1=nn.ReLU(),
            fc2=nn.Linear(256, 256),
            relu2=nn.ReLU(),
            fc3=nn.Linear(256, 10),
        )
    )


def _mlp_wide() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(64, 2048),
            relu1=nn.ReLU(),
            fc2=nn.Linear(2048, 2048),
            relu2=nn.ReLU(),
            fc3=nn.Linear(2048, 10),
        )
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            image=nn.Unflatten(1, (1, 8, 8)),
            conv1=nn.Conv2d(1, 16, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(16, 32, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc=nn.Linear(32 * 4 * 4, 10),
        )
    )


_REGISTRY: dict[str, ModelFactory] = {"mlp": _mlp, "mlp-wide": _mlp_wide, "cnn": _cnn}
_LOCK = threading.RLock()  # re-entrant: a factory may itself call build_model


def register_model(name: str, factory: ModelFactory) -> None:
    """Register ``factory`` under ``name``; an existing name is never replaced."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"name must be a non-empty string without ':', got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for model {name!r} is not callable")
    with _LOCK:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered; refusing to replace it")
        _REGISTRY[name] = factory


def model_names() -> list[str]:
    """Sorted names of the registered models."""
    with _LOCK:
        return sorted(_REGISTRY)


def _resolve(name: str) -> ModelFactory:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if ":" in name:
        return load_entrypoint(name)
    with _LOCK:
        factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(model_names())} "
            "(or give an entry point 'package.module:function')"
        )
    return factory


def build_model(name: str, *, seed: int = 0, allowed: Collection[str] | None = None,
                named_by: str = "the caller") -> nn.Module:
    """Build model ``name`` with the initial weights ``torch.manual_seed(seed)`` gives
    (``allowed``/``named_by``: see :func:`check_allowed` and the module contract).

    >>> sum(p.numel() for p in build_model("mlp").parameters())
    85002
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if allowed is not None:
        check_allowed(name, allowed, named_by=named_by)
    factory = _resolve(name)
    with _LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model factory {name!r} returned {type(model).__name__}, not nn.Module")
    for pname, param in model.named_parameters():
        if param.dtype != torch.float32:
            raise ValueError(f"model {name!r}: parameter {pname!r} is {param.dtype}, not float32")
    return model
