"""The README's two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("## What is where")[0]
    return re.findall(r"```bash\n(.+?)\n```", head)


def test_readme_opens_with_two_commands() -> None:
    main, tests = _readme_commands()
    assert main.endswith(("autobiz dev up", "autobiz demo"))
    assert "pip install -e" in main and "pip install -e '.[dev]'" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines
