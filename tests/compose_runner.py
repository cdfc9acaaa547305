"""Run docker/docker-compose.yml without Docker: each service becomes a local process.

What is emulated, and how (docker compose semantics, reduced to what the file uses):

- **Interpolation**: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
  ``${VAR?err}``, ``$VAR`` and ``$$`` in every string value, from a given environment (the
  shell of ``docker compose``). YAML anchors and ``<<`` merge keys are resolved by PyYAML.
- **Command**: the service's ``entrypoint``/``command`` if set, else the ``ENTRYPOINT``/
  ``CMD`` of its build target in the Dockerfile (exec form only; inherited through
  ``FROM <stage>``; overriding ``entrypoint`` drops the image's CMD, as compose does). The
  executable is looked up beside ``sys.executable`` (the venv's console scripts), and
  ``python`` is ``sys.executable``: the same console script + arguments the container runs.
- **Environment**: the host environment, then the image's ``ENV`` lines, then the service's
  ``environment`` (a null value passes the shell's variable through, or leaves it unset).
- **Start order**: ``depends_on`` with ``service_completed_successfully`` (a one-shot
  service, run to exit 0 first) and ``service_healthy`` (its healthcheck passes first).
- **Network and volumes** (the only rewrites): ``<service or loopback>:<container port>``
  becomes ``127.0.0.1:<free host port>``, a value equal to the container port becomes the
  host port, and a value at or under a volume's mount target moves under a local folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker" / "docker-compose.yml"

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"
                  r"|([A-Za-z_][A-Za-z0-9_]*))")


class ComposeError(ValueError):
    """The compose file uses something this emulation does not support, or is invalid."""


# -- loading -------------------------------------------------------------------------------

def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose-style variable substitution in every string of a loaded YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = environ.get(name)
        if op in (":-", ":?"):
            missing = not current
        else:
            missing = current is None
        if op in (":-", "-"):
            return arg if missing else current  # type: ignore[return-value]
        if op in (":?", "?") and missing:
            raise ComposeError(f"required variable {name} is missing: {arg}")
        return current or ""

    return _VAR.sub(sub, value)


def load_compose(path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """The compose file with anchors merged and variables substituted from ``environ``
    (default: no variables set, i.e. every ``${VAR:-default}`` takes its default)."""
    import yaml  # PyYAML: a test extra; imported here so the module loads without it

    tree = yaml.safe_load(path.read_text())
    tree = interpolate(tree, {} if environ is None else environ)
    if not isinstance(tree, dict) or not isinstance(tree.get("services"), dict):
        raise ComposeError(f"{path}: no services")
    return tree


def service_environment(service: Mapping[str, Any], environ: Mapping[str, str]
                        ) -> dict[str, str]:
    """A service's ``environment`` (map or list form) as strings; null = pass-through."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        items = [(e.partition("=")[0], e.partition("=")[2] if "=" in e else None) for e in raw]
    else:
        items = list(raw.items())
    env: dict[str, str] = {}
    for key, value in items:
        if value is None:
            if key in environ:
                env[key] = environ[key]
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        else:
            env[key] = str(value)
    return env


def volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's short-form ``volumes`` as mount target -> volume name (a ``:ro`` /
    ``:rw`` mode suffix is dropped)."""
    mounts = {}
    for spec in service.get("volumes") or ():
        volume, _, rest = str(spec).partition(":")
        target = rest.split(":", 1)[0]
        if not volume or not target.startswith("/"):
            raise ComposeError(f"volume {spec!r}: only the short form volume:/target[:mode]")
        mounts[target] = volume
    return mounts


# -- Dockerfile ----------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    parent: str  # FROM image or stage name
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    healthcheck: list[str] | None = None


def _instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _exec_form(instruction: str, rest: str) -> list[str]:
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        raise ComposeError(f"{instruction} {rest!r}: only the exec (JSON) form is supported"
                           ) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ComposeError(f"{instruction} {rest!r}: expected a JSON list of strings")
    return value


def parse_dockerfile(path: Path) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for word, rest in _instructions(path.read_text()):
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"#{len(stages)}"
            stage = stages[name] = Stage(name=name, parent=parts[0])
        elif stage is None:
            continue  # ARG / syntax lines before the first FROM
        elif word == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                if not sep:
                    raise ComposeError(f"ENV {rest!r}: use the KEY=VALUE form")
                stage.env[key] = value
        elif word == "ENTRYPOINT":
            stage.entrypoint = _exec_form(word, rest)
            stage.cmd = None  # a new ENTRYPOINT resets an inherited CMD
        elif word == "CMD":
            stage.cmd = _exec_form(word, rest)
        elif word == "USER":
            stage.user = rest
        elif word == "HEALTHCHECK":
            stage.healthcheck = _exec_form(word, rest[rest.index("CMD") + 3:].strip())
    return stages


@dataclass(frozen=True)
class Image:
    """What a container of one build target starts with."""

    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    user: str | None
    base: str  # the external image at the root of the stage chain


def resolve_target(stages: Mapping[str, Stage], target: str) -> Image:
    chain: list[Stage] = []
    name = target
    while name in stages:
        chain.append(stages[name])
        name = stages[name].parent
    if not chain:
        raise ComposeError(f"no build stage named {target!r}")
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = None
    for stage in reversed(chain):
        env.update(stage.env)
        if stage.entrypoint is not None:
            entrypoint, cmd = stage.entrypoint, []
        if stage.cmd is not None:
            cmd = stage.cmd
        user = stage.user or user
    return Image(env=env, entrypoint=entrypoint, cmd=cmd, user=user, base=chain[-1].parent)


def service_image(service: Mapping[str, Any], compose_file: Path = COMPOSE_FILE) -> Image:
    build = service.get("build")
    if not isinstance(build, dict) or "target" not in build:
        raise ComposeError("every service must build a Dockerfile target (build.target)")
    context = (compose_file.parent / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    return resolve_target(parse_dockerfile(dockerfile), build["target"])


# -- processes -----------------------------------------------------------------------------

def local_executable(name: str) -> str:
    """The container's ``name`` on this machine: python, or a console script of the venv."""
    if name in ("python", "python3"):
        return sys.executable
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise ComposeError(f"{name!r} is not installed beside {sys.executable}")
    return str(script)


@dataclass
class Rewriter:
    """Maps the container world (service hosts, container ports, volume paths) to this host.
    ``log`` records every rewrite as ``(where, before, after)``."""

    hosts: frozenset[str]  # names that reach the published service: service names, loopback
    ports: dict[int, int]  # container port -> host port
    paths: dict[str, Path]  # mount target -> local folder
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, where: str, value: str) -> str:
        new = value
        m = re.fullmatch(r"([A-Za-z0-9_.-]+):(\d+)", value)
        if m and m.group(1) in self.hosts and int(m.group(2)) in self.ports:
            new = f"127.0.0.1:{self.ports[int(m.group(2))]}"
        elif value.isdigit() and int(value) in self.ports:
            new = str(self.ports[int(value)])
        else:
            for target, local in self.paths.items():
                if value == target or value.startswith(target.rstrip("/") + "/"):
                    new = str(local) + value[len(target.rstrip("/")):]
                    break
        if new != value:
            self.log.append((where, value, new))
        return new


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None  # argv, or None


def service_process(name: str, service: Mapping[str, Any], environ: Mapping[str, str],
                    rewrite: Rewriter, *, base_env: Mapping[str, str] | None = None,
                    compose_file: Path = COMPOSE_FILE) -> ProcessSpec:
    image = service_image(service, compose_file)
    entrypoint, cmd = image.entrypoint, image.cmd
    if "entrypoint" in service:
        entrypoint = _as_argv(service["entrypoint"])
        cmd = []
    if "command" in service:
        cmd = _as_argv(service["command"])
    argv = [*entrypoint, *cmd]
    if not argv:
        raise ComposeError(f"service {name}: no entrypoint or command")
    env = dict(os.environ if base_env is None else base_env)
    for key, value in {**image.env, **service_environment(service, environ)}.items():
        env[key] = rewrite(f"{name}.environment.{key}", value)
    argv = [local_executable(argv[0])] + [rewrite(f"{name}.command", a) for a in argv[1:]]
    test = (service.get("healthcheck") or {}).get("test")
    health = None
    if test is not None:
        test = _as_argv(test)
        if test[0] != "CMD":
            raise ComposeError(f"service {name}: healthcheck must use the exec form [CMD, ...]")
        health = [local_executable(test[1])] + [rewrite(f"{name}.healthcheck", a)
                                                 for a in test[2:]]
    return ProcessSpec(name=name, argv=argv, env=env, healthcheck=health)


def _as_argv(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    raise ComposeError(f"expected a string or a list, got {value!r}")


def start(spec: ProcessSpec, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(spec.argv, env=spec.env, stdout=fh, stderr=subprocess.STDOUT)


def healthy(spec: ProcessSpec, timeout: float) -> bool:
    """One run of the healthcheck command, as the engine would: healthy iff exit 0."""
    assert spec.healthcheck is not None
    try:
        return subprocess.run(spec.healthcheck, env=spec.env, capture_output=True,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def duration_s(value: str | int | float) -> float:
    """Compose durations: ``1m30s``, ``5s``, ``500ms``, or a bare number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ComposeError(f"bad duration {value!r}")
    return sum(float(n) * units[u] for n, u in parts)
