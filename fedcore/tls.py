"""TLS for the callers of the coordinator: the client daemon and the health probe.

Why here: ``fedclient`` and ``fedcore.healthcheck`` open channels to the same coordinator
and must agree on what a TLS configuration means, and the probe may not import
``fedclient`` (it stays light). Invariant: a :class:`ClientTls` whose ``ca`` is empty means
plaintext; any set path is read when the channel opens, and an unreadable file is a
:class:`TlsFileError` naming the config key and the file — never a traceback from grpc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["ClientTls", "TlsFileError", "open_channel", "read_pem"]


class TlsFileError(ValueError):
    """A certificate or key file named in the configuration cannot be used."""


def read_pem(path: str, *, key: str) -> bytes:
    """The bytes of PEM file ``path``; ``key`` is the config key that named it (for errors)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{key}: cannot read {path!r}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"{key}: {path!r} is not a PEM file")
    return data


@dataclass(frozen=True)
class ClientTls:
    """``[tls]`` of a caller: trust ``ca``; present ``cert``/``key`` for mTLS.

    ``server_name`` overrides the name checked against the server certificate (when the
    address is an IP or a name the certificate does not carry)."""

    ca: str = ""  # CA bundle that signed the coordinator's certificate; "" = plaintext
    cert: str = ""  # this client's certificate chain (mTLS)
    key: str = ""  # its private key
    server_name: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert/key: set both (mTLS) or neither")
        if (self.cert or self.server_name) and not self.ca:
            raise ValueError("ca: required when cert or server_name is set")

    @property
    def enabled(self) -> bool:
        return bool(self.ca)


def _channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    cert = read_pem(tls.cert, key="tls.cert") if tls.cert else None
    key = read_pem(tls.key, key="tls.key") if tls.key else None
    return grpc.ssl_channel_credentials(root_certificates=read_pem(tls.ca, key="tls.ca"),
                                        private_key=key, certificate_chain=cert)


def _secure_options(tls: ClientTls) -> list[tuple[str, str]]:
    return [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []


def open_channel(target: str, tls: ClientTls,
                 options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """A plaintext channel when ``tls`` is off, else a TLS (or mTLS) one."""
    options = list(options or [])
    if not tls.enabled:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, _channel_credentials(tls),
                               options=options + _secure_options(tls))
