"""The closeout with the plain `temporal` CLI, as docs/operations.md#daily-closeout shows
it: a day started with a JSON input through the codec server, its `status` queried and
its result read; the schedule described, triggered."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from activities.closeout_activities import fetch_reports
from starters.closeout import ensure_closeout_schedule
from tests.support.plain_temporal import TemporalCli, start_workflow
from tests.workflows.closeout.support import local_today
from tests.workflows.support import Harness
from workflows.ids import closeout_schedule_id

pytestmark = pytest.mark.e2e


async def test_a_day_and_the_schedule_with_plain_temporal(
    harness: Harness, temporal: TemporalCli
) -> None:
    h = harness
    day = local_today(h) - timedelta(days=3)
    workflow_id = f"closeout:{h.tenant}:{day}"

    async def run(*args: str) -> str:
        return (await temporal(*args)).stdout

    await start_workflow(
        temporal,
        h,
        "DailyCloseout",
        workflow_id,
        {"tenant_id": h.tenant, "day": str(day), "timezone": "America/New_York"},
        "--search-attribute",
        f'TenantId="{h.tenant}"',
        reuse="AllowDuplicate",
    )
    shown = json.loads(await run("workflow", "result", "--workflow-id", workflow_id, "-o", "json"))
    assert "COMPLETED" in json.dumps(shown).upper()
    status = await run(
        "workflow", "query", "--workflow-id", workflow_id, "--type", "status", "-o", "json"
    )
    assert '"completed"' in status and str(day) in status
    (report,) = await fetch_reports(h.db, h.tenant, day, day)
    assert report["run_id"] == workflow_id and report["timezone"] == "America/New_York"

    schedule_id = closeout_schedule_id(h.tenant)
    await ensure_closeout_schedule(h.client, h.config, task_queue=h.task_queue)
    try:
        described = await run("schedule", "describe", "--schedule-id", schedule_id, "-o", "json")
        assert "America/New_York" in described
        assert "closeout" in await run("schedule", "list", "-o", "json")
        await run("schedule", "trigger", "--schedule-id", schedule_id)
    finally:
        await h.client.get_schedule_handle(schedule_id).delete()
