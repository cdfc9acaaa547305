"""``fedprune simulate --out DIR`` never deletes a previous run without being asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedprune.simulate import RunFolderNotEmpty, check_run_folder, prepare_run_folder


def test_simulate_refuses_a_non_empty_out_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "fedprune", "simulate", "--out", str(out),
                           "--clients", "2", "--rounds", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"fedprune simulate: error: run folder {out} is not empty: choose another --out or "
        f"pass --overwrite to replace it"]
    assert (out / "report.json").read_text() == "{}"  # nothing touched


def test_overwrite_replaces_and_an_empty_folder_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    assert not check_run_folder(out, overwrite=False)  # empty: usable as it is
    (out / "old.log").write_text("x")
    with pytest.raises(RunFolderNotEmpty, match="--overwrite"):
        prepare_run_folder(out, overwrite=False)
    prepare_run_folder(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["clients", "logs"]
