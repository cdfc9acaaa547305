"""How the coordinator listens: TLS/mTLS credentials and the refusal to be exposed unsafely.

Why: the wire carries the bearer token, every global model and every client update, so
beyond loopback it must be encrypted, and the built-in token must not admit the world.
Invariant: a :class:`Listener` for a non-loopback address exists only with TLS and a
token of the operator's own (or required client certificates), unless
``network.insecure`` (``fedserver --insecure``) says otherwise; certificate files are
read here and an unreadable one is a one-line :class:`~fedcore.tls.TlsFileError` naming its key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import grpc

from fedcore.secrets import digest
from fedcore.tls import read_pem
from fedserver.config import ServerConfig, TlsConfig

DEFAULT_TOKEN = "fedprune-local"  # ServerConfig's built-in shared token


class InsecureExposure(ValueError):
    """The configuration would serve a non-loopback address unsafely."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: may be reachable from anywhere
        return False


def check_exposure(config: ServerConfig) -> None:
    """Raise :class:`InsecureExposure` (naming ``--insecure``) for an unsafe public bind."""
    host, tls = config.network.host, config.tls
    if config.network.insecure or is_loopback(host):
        return
    if not tls.enabled:
        raise InsecureExposure(
            f"refusing to serve {host} without TLS (set tls.cert and tls.key; "
            "`fedprune certs` makes development ones); pass --insecure to serve it anyway")
    shared = config.auth.shared_token
    if not tls.require_client_cert and shared and digest(shared) == digest(DEFAULT_TOKEN):
        raise InsecureExposure(
            f"refusing to serve {host} with the built-in token {DEFAULT_TOKEN!r} (set "
            "auth.shared_token or auth.tokens, or tls.require_client_cert); "
            "pass --insecure to serve it anyway")


def _server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    client_ca = read_pem(tls.client_ca, key="tls.client_ca") if tls.client_ca else None
    pair = (read_pem(tls.key, key="tls.key"), read_pem(tls.cert, key="tls.cert"))
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=tls.require_client_cert)


@dataclass(frozen=True)
class Listener:
    """A checked address with its credentials (files already read): build it before
    anything else, so a bad config fails before the store is opened."""

    address: str
    credentials: grpc.ServerCredentials | None

    @classmethod
    def from_config(cls, config: ServerConfig) -> Listener:
        check_exposure(config)
        creds = _server_credentials(config.tls) if config.tls.enabled else None
        return cls(f"{config.network.host}:{config.network.port}", creds)

    def bind(self, server: grpc.Server | grpc.aio.Server) -> int:
        """Bind (TLS when configured); returns the port."""
        if self.credentials is not None:
            port = server.add_secure_port(self.address, self.credentials)
        else:
            port = server.add_insecure_port(self.address)
        if port == 0:
            raise OSError(f"cannot bind {self.address}")
        return port
