"""``fedprune certs``: a development CA, a coordinator certificate and client certificates.

Why: TLS and mTLS need certificates before the first run; operators with a PKI use their
own, everyone else gets a working set in one command. Invariant: every certificate is
signed by the CA written alongside (``ca.pem``); the server certificate carries the SANs
``localhost``, ``127.0.0.1`` and any ``--san`` given; client ``NAME`` gets a certificate
whose subject CN and SAN are ``NAME`` — the identity the coordinator derives from it.
Private keys are written with mode 0600. Only the ``cryptography`` package is used.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertSet", "make_certs"]

VALID_DAYS = 365


@dataclass(frozen=True)
class CertSet:
    """Paths of what :func:`make_certs` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # name -> (cert, key)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedprune development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _sign(*, subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool, sans: list[str],
          usage: list[x509.ObjectIdentifier]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(out: Path, *, clients: tuple[str, ...], server_sans: tuple[str, ...] = (),
               ca_name: str = "fedprune development CA") -> CertSet:
    """Write ``ca.pem``, ``server.pem``/``server.key`` and ``<client>.pem``/``.key``.

    The CA's private key is not kept: run again (into a new folder) to add clients."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cert = _sign(subject=ca_name, key=ca_key, issuer=_name(ca_name), issuer_key=ca_key,
                    ca=True, sans=[], usage=[])
    ca = _write(out / "ca.pem", _pem(ca_cert))
    server_key = _key()
    sans = ["localhost", "127.0.0.1", *[s for s in server_sans if s]]
    server = _sign(subject=sans[-1] if server_sans else "localhost", key=server_key,
                   issuer=ca_cert.subject, issuer_key=ca_key, ca=False, sans=sans,
                   usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    written = {}
    for name in clients:
        key = _key()
        cert = _sign(subject=name, key=key, issuer=ca_cert.subject, issuer_key=ca_key,
                     ca=False, sans=[name], usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        written[name] = (_write(out / f"{name}.pem", _pem(cert)),
                         _write(out / f"{name}.key", _key_pem(key), private=True))
    return CertSet(ca=ca, server_cert=_write(out / "server.pem", _pem(server)),
                   server_key=_write(out / "server.key", _key_pem(server_key), private=True),
                   clients=written)
