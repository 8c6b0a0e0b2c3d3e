"""Running the `autobiz` CLI as a user does, against a stack of its own: a temporary
home and free ports for every service, so tests never meet a developer's stack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT_SETTINGS = [
    "AUTOBIZ_TEMPORAL__PORT",
    "AUTOBIZ_TEMPORAL__UI_PORT",
    "AUTOBIZ_TEMPORAL__HTTP_PORT",
    "AUTOBIZ_TEMPORAL__METRICS_PORT",
    "AUTOBIZ_POSTGRES__PORT",
    "AUTOBIZ_SANDBOX__PORT",
    "AUTOBIZ_INGRESS__PORT",
    "AUTOBIZ_KERNEL__CODEC_SERVER_PORT",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def autobiz(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"autobiz {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env["AUTOBIZ_HOME"] = str(tmp_path / "home")
    for name in PORT_SETTINGS:
        env[name] = str(free_port())
    env["AUTOBIZ_WORKER__METRICS_BIND"] = f"127.0.0.1:{free_port()}"
    yield env
    # Whatever happened, leave nothing running.
    autobiz(env, "dev", "down", check=False)
