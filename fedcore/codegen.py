"""Generate the Python protobuf and gRPC modules in ``fedcore/pb`` from ``proto/``.

One command regenerates everything: ``python -m fedcore.codegen``. The generated files are
committed; ``tests/test_codegen.py`` regenerates into a temporary folder and fails when the
committed copies are stale. protoc writes imports from the .proto path
(``from fedprune.v1 import tensor_pb2``); we rewrite them to ``fedcore.pb`` because a
top-level ``fedprune.v1`` package would collide with our own ``fedprune`` CLI package.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE = Path("fedprune/v1")
OUT_DIR = Path(__file__).resolve().parent / "pb"
_IMPORT_RE = re.compile(r"^from fedprune\.v1 import (\w+)", re.MULTILINE)


def generate(out_dir: Path = OUT_DIR, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc on every .proto under ``proto_root/fedprune/v1`` into ``out_dir``."""
    from grpc_tools import protoc  # dev/test dependency only

    sources = sorted((proto_root / PROTO_PACKAGE).glob("*.proto"))
    if not sources:
        raise FileNotFoundError(f"no .proto files under {proto_root / PROTO_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(s.relative_to(proto_root)) for s in sources],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed: " + " ".join(args))
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for produced in sorted((Path(tmp) / PROTO_PACKAGE).iterdir()):
            text = _IMPORT_RE.sub(r"from fedcore.pb import \1", produced.read_text())
            target = out_dir / produced.name
            target.write_text(text)
            written.append(target)
    init = out_dir / "__init__.py"
    init.write_text('"""Generated protobuf/gRPC modules; regenerate with python -m fedcore.codegen."""\n')
    return [init, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    ns = parser.parse_args(argv)
    if ns.out.exists() and ns.out != OUT_DIR:
        shutil.rmtree(ns.out)
    for path in generate(ns.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
