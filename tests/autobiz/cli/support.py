"""The real `autobiz` CLI in a subprocess, pointed at the test session's Temporal dev
server, database and the harness's worker (one uuid task queue and tenant per test)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from autobiz.cli.main import app
from autobiz.settings import get_settings
from tests.support.postgres import ProvisionedDatabase
from tests.workflows.support import DEMO_CONFIG, Harness

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def refused(self, code: str) -> bool:
        """Failed with ``error[code]``, non-zero, and no traceback."""
        return (
            self.code != 0
            and f"error[{code}]" in self.stderr
            and "Traceback" not in self.stderr + self.stdout
        )


async def run_program(
    name: str,
    argv: list[str],
    args: tuple[str, ...],
    *,
    check: bool,
    within: float,
    **popen: Any,
) -> CliResult:
    """Run ``argv`` (the program and every word) and collect what it says; ``args`` are
    the words the test gave ``name``. With ``check`` a non-zero exit fails the test."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **popen
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    result = CliResult(args, proc.returncode or 0, out.decode(), err.decode())
    if check and result.code != 0:
        raise AssertionError(f"{name} {' '.join(args)} -> {result.code}\n{result.stderr}")
    return result


class Cli:
    def __init__(self, env: dict[str, str], config_dir: Path) -> None:
        self.env = env
        self.config_dir = config_dir

    def add_tenant(self, tenant: str) -> None:
        """Give ``tenant`` a BusinessConfig (the demo shop's, renamed)."""
        text = DEMO_CONFIG.read_text().replace("tenant: demo-shop", f"tenant: {tenant}")
        (self.config_dir / f"{tenant}.yaml").write_text(text)

    async def __call__(self, *args: str, check: bool = True, **env: str) -> CliResult:
        return await run_program(
            "autobiz",
            [sys.executable, "-m", "autobiz.cli.main", *args],
            args,
            check=check,
            within=120,
            env={**self.env, **env},
            cwd=ROOT,
        )


def cli_env(
    temporal_env: WorkflowEnvironment, db: ProvisionedDatabase, home: Path, config_dir: Path
) -> dict[str, str]:
    host, port = temporal_env.client.service_client.config.target_host.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env.update(
        AUTOBIZ_ENV="test",
        AUTOBIZ_HOME=str(home),
        AUTOBIZ_CONFIG_DIR=str(config_dir),
        AUTOBIZ_TEMPORAL__HOST=host,
        AUTOBIZ_TEMPORAL__PORT=port,
        AUTOBIZ_DATABASE_URL=db.admin_dsn,
        AUTOBIZ_APP_DATABASE_URL=db.app_dsn,
        COLUMNS="250",  # rich tables on one line each
    )
    return env


def in_process_env(
    h: Harness,
    temporal_env: WorkflowEnvironment,
    pg: ProvisionedDatabase,
    config_dir: Path,
    **extra: str,
) -> dict[str, str]:
    """The environment of the CLI run in this process (:func:`run_in_process`) against
    the harness's worker and tenant, ``config_dir`` given the tenant's config (the demo
    shop's, renamed); ``extra`` variables on top."""
    (config_dir / "shop.yaml").write_text(
        DEMO_CONFIG.read_text().replace("tenant: demo-shop", f"tenant: {h.tenant}")
    )
    host, port = temporal_env.client.service_client.config.target_host.rsplit(":", 1)
    return {
        "AUTOBIZ_CONFIG_DIR": str(config_dir),
        "AUTOBIZ_TEMPORAL__HOST": host,
        "AUTOBIZ_TEMPORAL__PORT": port,
        "AUTOBIZ_TEMPORAL__TASK_QUEUE": h.task_queue,
        "AUTOBIZ_APP_DATABASE_URL": pg.app_dsn,
        "AUTOBIZ_INGRESS__DEFAULT_TENANT": h.tenant,
        "COLUMNS": "200",
        **extra,
    }


async def run_in_process(env: dict[str, str], *args: str) -> Result:
    """``autobiz *args`` through typer's runner (settings re-read from ``env``); it must
    succeed."""
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def cli(
    harness: Harness,
    temporal_env: WorkflowEnvironment,
    pg_database: ProvisionedDatabase,
    tmp_path: Path,
) -> Cli:
    """The CLI with the harness's tenant as the default tenant and its task queue."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    env = cli_env(temporal_env, pg_database, tmp_path / "home", config_dir)
    env["AUTOBIZ_TEMPORAL__TASK_QUEUE"] = harness.task_queue
    env["AUTOBIZ_INGRESS__DEFAULT_TENANT"] = harness.tenant
    runner = Cli(env, config_dir)
    runner.add_tenant(harness.tenant)
    return runner


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


@pytest.fixture
def offline(tmp_path: Path) -> Cli:
    """The CLI with the demo tenant configured and nothing running where it looks."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env.update(
        AUTOBIZ_ENV="test",
        AUTOBIZ_HOME=str(tmp_path / "home"),
        AUTOBIZ_CONFIG_DIR=str(config_dir),
        AUTOBIZ_TEMPORAL__PORT=str(closed_port()),
        AUTOBIZ_DATABASE_URL=f"host=127.0.0.1 port={closed_port()} user=postgres dbname=x",
        COLUMNS="250",
    )
    cli = Cli(env, config_dir)
    cli.add_tenant("demo-shop")
    return cli
