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
    # experiments only: stretch each local training to this many times its length (>= 1)
    slowdown: float = 1.0
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
        if not 1 <= self.slowdown < float("inf"):
            raise ValueError("slowdown: must be finite and >= 1")


@dataclass(frozen=True)
class PoolConfig:
    """``fedclient-pool``: many virtual clients in one process (see :mod:`fedclient.pool`).

    Virtual client ``p`` (one per entry of ``partitions``) is ``client`` with client id
    ``{id_prefix}{p}``, data partition ``p`` of ``client.data.num_partitions``, its token
    from ``tokens`` (else ``client.token``) and ``slowdown`` if ``p`` is in
    ``slow_partitions`` (else ``client.slowdown``); every other key is the template's.
    ``client.client_id`` is only the pool's own name in logs."""

    client: ClientConfig = field(default_factory=lambda: ClientConfig(client_id="pool"))
    partitions: tuple[int, ...] = ()
    id_prefix: str = "client-"
    slow_partitions: tuple[int, ...] = ()
    slowdown: float = 1.0  # of the slow partitions
    clients_per_channel: int = 100  # virtual clients sharing one gRPC connection
    tokens: dict[str, str] = field(default_factory=dict, metadata=SECRET)  # id -> token

    def __post_init__(self) -> None:
        n = self.client.data.num_partitions
        if not self.partitions or len(set(self.partitions)) != len(self.partitions):
            raise ValueError("partitions: required, without repeats")
        if not all(0 <= p < n for p in (*self.partitions, *self.slow_partitions)):
            raise ValueError(f"partitions: must be in 0..client.data.num_partitions-1 ({n - 1})")
        if not 1 <= self.slowdown < float("inf"):
            raise ValueError("slowdown: must be finite and >= 1")
        if self.clients_per_channel < 1:
            raise ValueError("clients_per_channel: must be >= 1")
        if self.client.tls.cert:  # a certificate names one client, a pool is many
            raise ValueError("client.tls.cert: a client certificate names one client; pooled "
                             "virtual clients authenticate with tokens (auth.tokens)")
