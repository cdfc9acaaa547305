"""Client daemon configuration (same loading rules as the coordinator: TOML < env < flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedclient.fault import FaultConfig
from fedcore.datasets import DataSpec
from fedcore.secrets import SECRET
from fedcore.tls import ClientTls

ATTACKS = ("", "sign_flip", "scale", "label_flip", "claim_examples")


@dataclass(frozen=True)
class AttackConfig:
    """``[attack]``: simulated adversarial behaviour (experiments only; see fedclient.attack).
    ``scale`` multiplies the delta for sign_flip (negated) and scale."""

    behaviour: str = ""  # "" (honest) | sign_flip | scale | label_flip | claim_examples
    scale: float = 10.0
    claimed_examples: int = 2**40

    def __post_init__(self) -> None:
        if self.behaviour not in ATTACKS:
            raise ValueError(f"attack.behaviour: must be one of {list(ATTACKS)}")
        if not 0 < self.scale < float("inf"):
            raise ValueError("attack.scale: must be finite and > 0")
        if self.claimed_examples < 1:
            raise ValueError("attack.claimed_examples: must be >= 1")


@dataclass(frozen=True)
class ClientConfig:
    server: str = "127.0.0.1:50051"  # host:port of the coordinator
    client_id: str = ""  # required; unique per client
    token: str = field(default="fedprune-local", metadata=SECRET)  # bearer token
    max_wait_ms: int = 20_000  # long-poll length asked of Round
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    max_payload_bytes: int = 1 << 30  # refuse larger model downloads
    seed: int = 0
    log_level: str = "INFO"
    log_format: str = "text"
    # models this client agrees to build besides the registry's (``mlp``, ``cnn``):
    # ``package.module:function`` entry points its operator trusts; a task naming any other
    # is refused before anything is imported (the coordinator cannot make a client run code)
    allowed_models: tuple[str, ...] = ()
    # personalization: file keeping this client's personal layers across restarts ("": memory)
    personal_state: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    tls: ClientTls = field(default_factory=ClientTls)
    attack: AttackConfig = field(default_factory=AttackConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)  # simulated crashes (tests)

    def __post_init__(self) -> None:
        if not self.client_id or len(self.client_id) > 128 or not self.client_id.isprintable():
            raise ValueError("client_id: required, 1..128 printable characters")
        if ":" not in self.server:
            raise ValueError(f"server: expected host:port, got {self.server!r}")
        if not self.token:
            raise ValueError("token: required")
        if self.max_wait_ms < 100:
            raise ValueError("max_wait_ms: must be >= 100")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("backoff_initial_s: must be > 0 and <= backoff_max_s")
        if self.log_format not in ("text", "json"):
            raise ValueError("log_format: must be text or json")
