"""A gRPC health probe for container healthchecks, with no binaries beyond Python.

``python -m fedcore.healthcheck --address HOST:PORT [--service NAME] [--timeout S]``
calls ``grpc.health.v1.Health/Check`` and exits 0 iff the answer is ``SERVING``;
any other status, an unreachable server or a timeout exits 1 (Docker's "unhealthy"),
with one line on stderr saying why. ``--service ""`` (the default) asks about the server
as a whole; the coordinator also registers ``fedprune.v1.Coordinator``. Against a TLS
coordinator pass ``--ca`` (and ``--cert``/``--key`` when it requires client certificates,
``--server-name`` when the address is not a name in its certificate).

Only grpc and grpc_health are imported (no torch), so a probe costs a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedcore.tls import ClientTls, TlsFileError, open_channel

__all__ = ["check", "main"]

SERVING = health_pb2.HealthCheckResponse.SERVING


def check(address: str, service: str = "", timeout: float = 3.0, *,
          tls: ClientTls | None = None) -> tuple[bool, str]:
    """Ask ``address`` about ``service``: ``(serving, human-readable status)``."""
    with open_channel(address, tls or ClientTls()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service),
                                  timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            return False, f"{code.name}: {details}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == SERVING, status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedcore.healthcheck",
                                description="Exit 0 iff a gRPC server reports SERVING.")
    p.add_argument("--address", default="127.0.0.1:50051", help="host:port (default %(default)s)")
    p.add_argument("--service", default="",
                   help='service name to ask about; "" = the whole server (default)')
    p.add_argument("--timeout", type=float, default=3.0,
                   help="seconds to wait for an answer (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="print nothing when serving")
    p.add_argument("--ca", default="", help="CA of the server certificate: speak TLS")
    p.add_argument("--cert", default="", help="client certificate (mTLS)")
    p.add_argument("--key", default="", help="client private key (mTLS)")
    p.add_argument("--server-name", default="", help="name to check the certificate against")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if ns.timeout <= 0:
        parser().error("--timeout must be > 0")
    what = f"{ns.address} service {ns.service!r}"
    try:
        tls = ClientTls(ca=ns.ca, cert=ns.cert, key=ns.key, server_name=ns.server_name)
        serving, status = check(ns.address, ns.service, ns.timeout, tls=tls)
    except (TlsFileError, ValueError) as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return 1
    if serving:
        if not ns.quiet:
            print(f"{what}: {status}")
        return 0
    print(f"{what}: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
