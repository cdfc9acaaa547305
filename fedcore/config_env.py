"""Which environment variables are configuration, and which key each one sets.

The form is strict: ``<PREFIX>_<KEY>`` for a top-level key and
``<PREFIX>_<SECTION>__<KEY>`` (sections nest with more ``__``) for the rest, in upper case,
e.g. ``FEDSERVER_STATE_DIR`` -> ``state_dir`` and ``FEDSERVER_ROUND__CLIENTS_PER_ROUND``
-> ``round.clients_per_round``. A table-valued key (``auth.tokens``) takes JSON.

Every variable with the prefix must name a key: a malformed name (lower case, empty
segment, ``___``), a name that is no key, or a section is a :class:`ConfigError` naming
the variable, so a typo cannot be ignored silently. The one exception is what container
platforms inject for a service of the same name, which is not configuration and is
skipped: ``<PREFIX>_SERVICE_HOST``, ``<PREFIX>_SERVICE_PORT[_<NAME>]``,
``<PREFIX>_PORT_<N>_<TCP|UDP|SCTP>[_ADDR|_PORT|_PROTO]``, and ``<PREFIX>_PORT`` when its
value is an address such as ``tcp://10.0.0.7:50051`` (Kubernetes service links, docker
links).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SEGMENT = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*"
_NAME = re.compile(rf"{_SEGMENT}(?:__{_SEGMENT})*")
_PLATFORM_NAME = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_ADDR|_PORT|_PROTO)?")
_ADDRESS_VALUE = re.compile(r"(?:tcp|udp|sctp)://", re.IGNORECASE)


@dataclass(frozen=True)
class EnvOverride:
    variable: str  # e.g. FEDSERVER_ROUND__ROUNDS
    key: str  # dotted config key, e.g. round.rounds
    type: Any  # the key's annotated type
    value: str


def _is_platform_variable(rest: str, value: str) -> bool:
    return bool(_PLATFORM_NAME.fullmatch(rest)) or (
        rest == "PORT" and bool(_ADDRESS_VALUE.match(value)))


def _key_type(cls: type[Any], dotted: str) -> tuple[Any, str]:
    """The annotated type of ``dotted`` in config tree ``cls``, or (None, why not)."""
    node: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return None, f"{'.'.join(parts[:i])!r} is not a section"
        hints = typing.get_type_hints(node)
        if part not in {f.name for f in dataclasses.fields(node)}:
            where = f"section {'.'.join(parts[:i])!r}" if i else "the top level"
            return None, f"{dotted!r} is not a config key (no {part!r} in {where}" + \
                _did_you_mean(node, hints, part) + ")"
        node = hints[part]
    if isinstance(node, type) and dataclasses.is_dataclass(node):
        return None, f"{dotted!r} is a section: set one of its keys"
    return node, ""


def _did_you_mean(section: type[Any], hints: Mapping[str, Any], part: str) -> str:
    """``; <SECTION>.<part> is one`` when a subsection has a key of that name."""
    for field in dataclasses.fields(section):
        sub = hints[field.name]
        if isinstance(sub, type) and dataclasses.is_dataclass(sub) and \
                part in {f.name for f in dataclasses.fields(sub)}:
            return f"; did you mean {field.name}.{part}?"
    return ""


def environment_overrides(cls: type[Any], prefix: str, environ: Mapping[str, str],
                          error: type[ValueError]) -> list[EnvOverride]:
    """The configuration variables of ``environ`` for config tree ``cls``, sorted by name;
    raises ``error`` (one line naming the variable) for a bad one (see the module doc)."""
    found = []
    example = f"{prefix}_ROUND__ROUNDS" if "round" in {f.name for f in dataclasses.fields(cls)} \
        else f"{prefix}_LOG_LEVEL"
    for name, value in sorted(environ.items()):
        if not name.startswith(prefix + "_"):
            continue
        rest = name[len(prefix) + 1:]
        if _is_platform_variable(rest, value):
            continue
        if not _NAME.fullmatch(rest):
            raise error(f"environment variable {name}: malformed; config variables look like "
                        f"{prefix}_<KEY> or {prefix}_<SECTION>__<KEY> in upper case, e.g. "
                        f"{example}")
        key = rest.lower().replace("__", ".")
        tp, why = _key_type(cls, key)
        if tp is None:
            raise error(f"environment variable {name}: {why} (see --print-config for the "
                        f"keys; {prefix}_<SECTION>__<KEY>, e.g. {example})")
        found.append(EnvOverride(variable=name, key=key, type=tp, value=value))
    return found
