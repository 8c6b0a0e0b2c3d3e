"""The monitor run now with the plain `temporal` CLI, as docs/operations.md#incidents
shows it: start with a JSON input through the codec server, wait for the result; the
worker loads the tenant's policy and the broken row becomes an incident."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from activities.monitor_activities import fetch_incidents
from autobiz.codec_server import create_app
from autobiz.devstack.services import temporal_binary
from autobiz.settings import KernelSettings, Settings
from sandbox.server import ServerThread
from tests.autobiz.cli.support import run_program
from tests.workflows.monitor import broken_data as broken
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e

TOKEN = "codec-test-token"


@pytest.fixture
def codec_url() -> Iterator[str]:
    settings = Settings(kernel=KernelSettings(codec_server_token=SecretStr(TOKEN)))
    server = ServerThread(create_app(settings)).start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_run_the_monitor_now_with_plain_temporal(harness: Harness, codec_url: str) -> None:
    h = harness
    await broken.order(h.db, h.tenant, "stuck-9", "paid")
    common = [
        "--address",
        h.client.service_client.config.target_host,
        "--codec-endpoint",
        codec_url,
        "--codec-auth",
        f"Bearer {TOKEN}",
    ]
    workflow_id = f"monitor:{h.tenant}:manual-1"

    async def temporal(*args: str) -> str:
        done = await run_program(
            "temporal", [temporal_binary(), *args, *common], args, check=True, within=60
        )
        return done.stdout

    start = f"""workflow start --type InvariantMonitor --task-queue {h.task_queue}
        --workflow-id {workflow_id}
        --id-conflict-policy UseExisting --id-reuse-policy AllowDuplicate"""
    await temporal(
        *start.split(),
        "--search-attribute",
        f'TenantId="{h.tenant}"',
        "--input",
        json.dumps({"tenant_id": h.tenant}),
    )
    shown = await temporal("workflow", "result", "--workflow-id", workflow_id, "-o", "json")
    assert "COMPLETED" in shown.upper()
    (incident,) = await fetch_incidents(h.db, h.tenant)
    assert (incident.kind, incident.entity_ref, incident.first_run_id) == (
        "INV-03",
        "order:stuck-9:paid",
        workflow_id,
    )
