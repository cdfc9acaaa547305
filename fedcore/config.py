"""Configuration from one TOML file, overridden by environment variables, then CLI flags.

Configs are trees of frozen dataclasses (sections are dataclass-typed fields). Precedence,
lowest first: dataclass defaults < ``base`` (a named preset's ``key=value`` items) < TOML
file < environment (``PREFIX_SECTION__KEY``, strictly: see :mod:`fedcore.config_env`) <
``--set section.key=value`` flags. Every unknown key and every value of the wrong type is
reported with its dotted key, e.g. ``config key 'round.deadline_s': expected a number``; a
float key never takes ``inf`` or ``nan``.
Dataclasses may validate further in ``__post_init__``; their ValueError is re-raised with
the section's dotted key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fedcore.config_env import environment_overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` (from TOML or a string from env/CLI) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(key, args[0], value)
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r}: expected a table")
        return build(tp, value, prefix=key)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if tp in (int, float):
            if isinstance(value, bool):
                raise ValueError
            if tp is float:
                number = float(value)
                if not math.isfinite(number):  # no key means "infinite"; nan passes no check
                    raise ConfigError(f"config key {key!r}: expected a finite number, "
                                      f"got {value!r}")
                return number
            return _exact_int(value) if isinstance(value, float) else int(value)
        if tp is str:
            return str(value)
        if origin in (dict, Mapping) or tp is dict:
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, Mapping):
                raise ValueError
            return {str(k): v for k, v in value.items()}
        if origin in (tuple, list, Sequence):
            if isinstance(value, str):  # "a,b" or a JSON list, from env vars and flags
                value = json.loads(value) if value.lstrip().startswith("[") else \
                    [v for v in value.split(",") if v.strip()]
            items = value
            (inner, *_) = typing.get_args(tp) or (str,)
            return tuple(_coerce(key, inner, v) for v in items)
    except ConfigError:
        raise
    except (TypeError, ValueError, json.JSONDecodeError):
        raise ConfigError(f"config key {key!r}: expected {getattr(tp, '__name__', tp)}, "
                          f"got {value!r}") from None
    return value


def _exact_int(value: float) -> int:
    if not float(value).is_integer():
        raise ValueError
    return int(value)


def build(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, naming any bad key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            raise ConfigError(f"unknown config key {dotted!r}; known keys here: {sorted(fields)}")
        kwargs[key] = _coerce(dotted, hints[key], value)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        where = f"config section {prefix!r}" if prefix else "config"
        raise ConfigError(f"{where}: {exc}") from None


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[leaf] = value


def load(cls: type[T], *, path: str | Path | None = None, env_prefix: str = "",
         overrides: Sequence[str] = (), environ: Mapping[str, str] | None = None,
         base: Sequence[str] = ()) -> T:
    """Load ``cls`` from ``base`` items, TOML ``path``, ``env_prefix`` variables, then
    ``overrides`` (each later source wins)."""
    tree: dict[str, Any] = {}
    _apply_items(tree, base)
    if path:
        try:
            _merge(tree, tomllib.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    environ = os.environ if environ is None else environ
    if env_prefix:
        for var in environment_overrides(cls, env_prefix, environ, ConfigError):
            try:
                _coerce(var.key, var.type, var.value)  # named by its variable, not only key
            except ConfigError as exc:
                raise ConfigError(f"environment variable {var.variable}: {exc}") from None
            _set_path(tree, var.key, var.value)
    _apply_items(tree, overrides)
    return build(cls, tree)


def _apply_items(tree: dict[str, Any], items: Sequence[str]) -> None:
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _set_path(tree, key.strip(), value.strip())


def _merge(tree: dict[str, Any], other: Mapping[str, Any]) -> None:
    """``other`` over ``tree``, section by section."""
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config tree (for logs, reports and child-process configs)."""
    return dataclasses.asdict(config)


def to_toml(config: Any) -> str:
    """Serialize a config tree as TOML; dataclass-typed fields become [sections]."""
    lines: list[str] = []

    def emit(section: str, node: Any) -> None:
        fields = dataclasses.fields(node)
        if section:
            lines.append(f"\n[{section}]")
        for f in fields:
            value = getattr(node, f.name)
            if value is None:  # TOML has no null; "" reads back as None (see _coerce)
                lines.append(f'{f.name} = ""')
            elif not dataclasses.is_dataclass(value):
                lines.append(f"{f.name} = {_toml_value(value)}")
        for f in fields:
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                emit(f"{section}.{f.name}" if section else f.name, value)

    emit("", config)
    return "\n".join(lines).strip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
