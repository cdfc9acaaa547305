"""Resolve ``"package.module:attribute"`` strings to Python callables.

Entry points let an operator plug in a model factory or a data loader by configuration
without editing fedprune. Contract:

- ``spec`` is ``"<dotted module>:<dotted attribute>"``; both halves are Python
  identifiers separated by dots, e.g. ``"mypkg.models:build"`` or ``"mypkg:Factory.make"``.
- The module is imported with :func:`importlib.import_module`; the attribute is resolved
  step by step and must be callable.
- Every failure (malformed spec, missing module, missing attribute, not callable) is a
  :class:`ValueError` whose message quotes the spec. An ``ImportError`` raised *inside* an
  existing module (a broken dependency of the plugin) is re-raised as is, so the real
  cause is not disguised as "module not found".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["load_entrypoint"]


def _check_dotted(part: str, spec: str, what: str) -> None:
    if not part or not all(piece.isidentifier() for piece in part.split(".")):
        raise ValueError(
            f"entry point {spec!r}: {what} {part!r} is not a dotted Python name "
            "(expected 'package.module:function')"
        )


def load_entrypoint(spec: str) -> Callable[..., Any]:
    """Return the callable named by ``spec`` (``"package.module:function"``).

    >>> load_entrypoint("os.path:join")("a", "b") == __import__("os").path.join("a", "b")
    True
    >>> load_entrypoint("os.path.join")
    Traceback (most recent call last):
    ...
    ValueError: entry point 'os.path.join': expected exactly one ':' ...
    """
    if not isinstance(spec, str):
        raise ValueError(f"spec must be a str, got {type(spec).__name__}")
    if spec.count(":") != 1:
        raise ValueError(
            f"entry point {spec!r}: expected exactly one ':' as in 'package.module:function'"
        )
    module_name, attr_path = (part.strip() for part in spec.split(":"))
    _check_dotted(module_name, spec, "module")
    _check_dotted(attr_path, spec, "attribute")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only translate "this module (or a parent package) does not exist".
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise
        raise ValueError(f"entry point {spec!r}: module {module_name!r} not found") from exc
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            owner = getattr(target, "__name__", type(target).__name__)
            raise ValueError(f"entry point {spec!r}: {attr!r} not found in {owner!r}")
        target = getattr(target, attr)
    if not callable(target):
        raise ValueError(f"entry point {spec!r}: {attr_path!r} is not callable")
    return target
