"""The closeout with the plain `temporal` CLI, as docs/operations.md#daily-closeout shows
it: a day started with a JSON input through the codec server, its `status` queried and
its result read; the schedule described, triggered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from activities.closeout_activities import fetch_reports
from autobiz.codec_server import create_app
from autobiz.devstack.services import temporal_binary
from autobiz.settings import KernelSettings, Settings
from sandbox.server import ServerThread
from starters.closeout import ensure_closeout_schedule
from tests.autobiz.cli.support import run_program
from tests.workflows.closeout.support import local_today
from tests.workflows.support import Harness
from workflows.ids import closeout_schedule_id

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


async def test_a_day_and_the_schedule_with_plain_temporal(harness: Harness, codec_url: str) -> None:
    h = harness
    day = local_today(h) - timedelta(days=3)
    common = [
        "--address",
        h.client.service_client.config.target_host,
        "--codec-endpoint",
        codec_url,
        "--codec-auth",
        f"Bearer {TOKEN}",
    ]
    workflow_id = f"closeout:{h.tenant}:{day}"

    async def temporal(*args: str) -> str:
        done = await run_program(
            "temporal", [temporal_binary(), *args, *common], args, check=True, within=60
        )
        return done.stdout

    start = f"""workflow start --type DailyCloseout --task-queue {h.task_queue}
        --workflow-id {workflow_id}
        --id-conflict-policy UseExisting --id-reuse-policy AllowDuplicate"""
    await temporal(
        *start.split(),
        "--search-attribute",
        f'TenantId="{h.tenant}"',
        "--input",
        json.dumps({"tenant_id": h.tenant, "day": str(day), "timezone": "America/New_York"}),
    )
    shown = json.loads(
        await temporal("workflow", "result", "--workflow-id", workflow_id, "-o", "json")
    )
    assert "COMPLETED" in json.dumps(shown).upper()
    status = await temporal(
        "workflow", "query", "--workflow-id", workflow_id, "--type", "status", "-o", "json"
    )
    assert '"completed"' in status and str(day) in status
    (report,) = await fetch_reports(h.db, h.tenant, day, day)
    assert report["run_id"] == workflow_id and report["timezone"] == "America/New_York"

    schedule_id = closeout_schedule_id(h.tenant)
    await ensure_closeout_schedule(h.client, h.config, task_queue=h.task_queue)
    try:
        described = await temporal(
            "schedule", "describe", "--schedule-id", schedule_id, "-o", "json"
        )
        assert "America/New_York" in described
        assert "closeout" in await temporal("schedule", "list", "-o", "json")
        await temporal("schedule", "trigger", "--schedule-id", schedule_id)
    finally:
        await h.client.get_schedule_handle(schedule_id).delete()
