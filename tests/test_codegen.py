"""The committed protobuf/gRPC modules in fedcore/pb must match proto/ exactly."""

from __future__ import annotations

from pathlib import Path

from fedcore.codegen import OUT_DIR, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = {p.name: p.read_text() for p in generate(tmp_path / "pb")}
    committed = {p.name: p.read_text() for p in OUT_DIR.iterdir() if p.is_file()
                 and p.suffix in (".py", ".pyi")}
    assert set(fresh) == set(committed), "run: python -m fedcore.codegen"
    stale = [name for name, text in fresh.items() if committed[name] != text]
    assert not stale, f"stale generated files {stale}; run: python -m fedcore.codegen"
