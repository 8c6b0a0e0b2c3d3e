"""The monitor run now with the plain `temporal` CLI, as docs/operations.md#incidents
shows it: start with a JSON input through the codec server, wait for the result; the
worker loads the tenant's policy and the broken row becomes an incident."""

from __future__ import annotations

import pytest

from activities.monitor_activities import fetch_incidents
from tests.support.plain_temporal import TemporalCli, start_workflow
from tests.workflows.monitor import broken_data as broken
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e


async def test_run_the_monitor_now_with_plain_temporal(
    harness: Harness, temporal: TemporalCli
) -> None:
    h = harness
    await broken.order(h.db, h.tenant, "stuck-9", "paid")
    workflow_id = f"monitor:{h.tenant}:manual-1"
    await start_workflow(
        temporal,
        h,
        "InvariantMonitor",
        workflow_id,
        {"tenant_id": h.tenant},
        "--search-attribute",
        f'TenantId="{h.tenant}"',
        reuse="AllowDuplicate",
    )
    shown = (
        await temporal("workflow", "result", "--workflow-id", workflow_id, "-o", "json")
    ).stdout
    assert "COMPLETED" in shown.upper()
    (incident,) = await fetch_incidents(h.db, h.tenant)
    assert (incident.kind, incident.entity_ref, incident.first_run_id) == (
        "INV-03",
        "order:stuck-9:paid",
        workflow_id,
    )
