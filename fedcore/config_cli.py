"""The command-line face of ``fedcore.config``, shared by ``fedserver`` and ``fedclient``.

Both daemons take ``--config FILE``, repeatable ``--set section.key=value``, a few
shortcut flags for common keys, ``--print-config``, and ``<PREFIX>_<SECTION>__<KEY>``
environment variables, with the precedence documented in :mod:`fedcore.config`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedcore import config as config_io
from fedcore.secrets import redacted


@dataclass(frozen=True)
class ConfigCli:
    prog: str
    description: str
    env_prefix: str
    shortcuts: Mapping[str, str]  # flag name -> dotted config key
    example: str  # an example --set / env key, e.g. "round.rounds=5"
    # Flags that are not configuration (how to start, not what to run): flag -> argparse
    # keyword arguments, e.g. {"--new-run": {"action": "store_true", "help": ...}}.
    run_flags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    switches: Mapping[str, str] = field(default_factory=dict)  # --flag -> boolean key set true

    def parser(self) -> argparse.ArgumentParser:
        key, _, value = self.example.partition("=")
        env = f"{self.env_prefix}_{key.upper().replace('.', '__')}={value}"
        p = argparse.ArgumentParser(prog=self.prog, description=self.description,
                                    epilog=f"Environment: {self.env_prefix}_<SECTION>__<KEY>="
                                           f"value, e.g. {env}.")
        p.add_argument("--config", help="TOML configuration file")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help=f"override any key, e.g. --set {self.example} (repeatable)")
        for flag, dotted in self.shortcuts.items():
            p.add_argument(f"--{flag.replace('_', '-')}", dest=flag,
                           metavar=dotted.split(".")[-1].upper(), help=f"same as --set {dotted}=...")
        for flag, dotted in self.switches.items():
            p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, action="store_true",
                           help=f"same as --set {dotted}=true")
        p.add_argument("--print-config", action="store_true",
                       help="print the effective configuration as TOML (tokens as their "
                            "sha256 digests) and exit")
        for flag, kwargs in self.run_flags.items():
            p.add_argument(flag, **kwargs)
        return p

    def load(self, cls: type[Any], argv: list[str] | None) -> tuple[Any, argparse.Namespace]:
        """Parse ``argv`` and load ``cls``; raises ConfigError naming a bad key."""
        ns = self.parser().parse_args(argv)
        overrides = [f"{key}={getattr(ns, flag)}" for flag, key in self.shortcuts.items()
                     if getattr(ns, flag) is not None] + ns.set \
            + [f"{key}=true" for flag, key in self.switches.items() if getattr(ns, flag)]
        config = config_io.load(cls, path=ns.config, env_prefix=self.env_prefix,
                                overrides=overrides)
        return config, ns

    def load_for_run(self, cls: type[Any], argv: list[str] | None) -> Any:
        """The config to run with, or an exit code: 2 after a config error, 0 after
        ``--print-config`` (both printed here)."""
        loaded = self.load_with_flags(cls, argv)
        return loaded if isinstance(loaded, int) else loaded[0]

    def load_with_flags(self, cls: type[Any], argv: list[str] | None
                        ) -> tuple[Any, argparse.Namespace] | int:
        """Like :meth:`load_for_run`, with the parsed flags (for :attr:`run_flags`)."""
        try:
            config, ns = self.load(cls, argv)
        except config_io.ConfigError as exc:
            print(f"{self.prog}: {exc}", file=sys.stderr)
            return 2
        if ns.print_config:
            print(config_io.to_toml(redacted(config)), end="")
            return 0
        return config, ns
