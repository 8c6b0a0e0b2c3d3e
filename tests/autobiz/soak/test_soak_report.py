"""The soak's figures and its command line, without a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autobiz.soak.runner import percentile

pytestmark = pytest.mark.unit


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.5], 99) == 7.5


def test_a_duration_that_is_not_one_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env["AUTOBIZ_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", "soak", "--duration", "soon", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "USAGE"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
