"""Prometheus's ``promtool`` (Debian's ``prometheus`` package; ``.ci/run`` installs it).

Missing: a failure in CI (``CI`` set to true), a skip elsewhere, saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

INSTALL = "apt-get install -y --no-install-recommends prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = f"promtool is needed (Debian's prometheus package: {INSTALL}; .ci/run does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def check_metrics(exposition: str) -> str:
    """``promtool check metrics`` on a scrape: its complaints ('' when clean)."""
    result = subprocess.run(
        [promtool(), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and not complaints:
        complaints = f"promtool exited {result.returncode}"
    return complaints
