"""The formatter decides the layout: no ``# fmt: skip`` / ``# fmt: off`` anywhere (#11
took out 597 of them), so `ruff format --check` in CI checks every line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
OPT_OUT = re.compile(r"#\s*fmt:\s*(skip|off)\b")


def opt_outs(paths: list[Path], root: Path = ROOT) -> list[str]:
    return [
        f"{p.relative_to(root)}:{n}"
        for p in paths
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if OPT_OUT.search(line)
    ]


def test_no_line_opts_out_of_the_formatter() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = [ROOT / f for f in tracked if f != "tests/hygiene/test_formatter.py"]
    assert len(files) > 200
    assert opt_outs(files) == []


def test_the_check_sees_an_opt_out(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("x = 1\ny = [1,2]  # fmt" + ": skip\n")
    assert opt_outs([planted], tmp_path) == ["planted.py:2"]
