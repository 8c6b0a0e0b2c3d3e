"""The plain `temporal` CLI on the tests' dev server, through our codec server with its
bearer token, as docs/operations.md drives the flows with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from autobiz.codec_server import create_app
from autobiz.devstack.services import temporal_binary
from autobiz.settings import KernelSettings, Settings
from sandbox.server import ServerThread
from tests.autobiz.cli.support import CliResult, run_program
from tests.workflows.support import Harness

TOKEN = "codec-test-token"


@pytest.fixture
def codec_server() -> Iterator[ServerThread]:
    settings = Settings(kernel=KernelSettings(codec_server_token=SecretStr(TOKEN)))
    server = ServerThread(create_app(settings)).start()
    try:
        yield server
    finally:
        server.stop()


class TemporalCli:
    def __init__(self, address: str, codec_url: str) -> None:
        self.common = [
            "--address",
            address,
            "--codec-endpoint",
            codec_url,
            "--codec-auth",
            f"Bearer {TOKEN}",
        ]

    async def __call__(self, *args: str, check: bool = True) -> CliResult:
        return await run_program(
            "temporal", [temporal_binary(), *args, *self.common], args, check=check, within=60
        )


@pytest.fixture
def temporal(harness: Harness, codec_server: ServerThread) -> TemporalCli:
    return TemporalCli(harness.client.service_client.config.target_host, codec_server.url)


async def start_workflow(
    temporal: TemporalCli,
    h: Harness,
    workflow_type: str,
    workflow_id: str,
    input: dict[str, Any],
    *flags: str,
    reuse: str = "RejectDuplicate",
) -> CliResult:
    """``temporal workflow start`` by business key, as our starters start a flow
    (``reuse``: its ``--id-reuse-policy``)."""
    return await temporal(
        "workflow",
        "start",
        "--type",
        workflow_type,
        "--task-queue",
        h.task_queue,
        "--workflow-id",
        workflow_id,
        "--id-conflict-policy",
        "UseExisting",
        "--id-reuse-policy",
        reuse,
        *flags,
        "--input",
        json.dumps(input),
    )
