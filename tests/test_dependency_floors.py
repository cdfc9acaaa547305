"""setup.cfg's floors are what the committed generated code needs, and this venv meets them.

protoc stamps each ``*_pb2.py`` with the protobuf version it was generated for (the
runtime refuses an older one, or another major), and each ``*_pb2_grpc.py`` with the grpcio
version (older grpcio raises at import). A floor lower than the stamp lets pip install a
runtime the stubs cannot import with.
"""

from __future__ import annotations

import configparser
import re
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PB = ROOT / "fedcore" / "pb"


def requirements() -> dict[str, Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in cfg["options"]["install_requires"].splitlines()]
    reqs = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {r.name: r for r in reqs}


def floor(req: Requirement) -> Version:
    (low,) = [Version(s.version) for s in req.specifier if s.operator == ">="]
    return low


def stamped_protobuf() -> set[Version]:
    pattern = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                         r"\s*(\d+),\s*(\d+),\s*(\d+),")
    found = {Version(".".join(m.groups())) for f in PB.glob("*_pb2.py")
             for m in pattern.finditer(f.read_text())}
    assert found, "no protobuf version stamp in fedcore/pb"
    return found


def stamped_grpc() -> set[Version]:
    pattern = re.compile(r"^GRPC_GENERATED_VERSION = '([\d.]+)'", re.MULTILINE)
    found = {Version(m.group(1)) for f in PB.glob("*_pb2_grpc.py")
             for m in pattern.finditer(f.read_text())}
    assert found, "no grpc version stamp in fedcore/pb"
    return found


def test_protobuf_floor_is_the_stubs_runtime_version() -> None:
    req = requirements()["protobuf"]
    (stamp,) = stamped_protobuf()
    assert floor(req) == stamp
    assert req.specifier.contains(str(stamp))
    assert not req.specifier.contains(f"{stamp.major + 1}.0.0")  # gencode checks the major


def test_grpc_floors_are_the_stubs_grpc_version() -> None:
    reqs = requirements()
    (stamp,) = stamped_grpc()
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        assert floor(reqs[name]) == stamp, name


def test_the_installed_runtime_meets_the_floors() -> None:
    for name, req in requirements().items():
        if name in ("protobuf", "grpcio", "grpcio-health-checking", "grpcio-reflection"):
            installed = Version(version(name)).public.split("+")[0]
            assert req.specifier.contains(installed), f"{name} {installed} vs {req}"
