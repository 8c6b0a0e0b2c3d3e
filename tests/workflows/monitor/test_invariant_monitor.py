"""InvariantMonitor on the dev server, the full worker, real PostgreSQL and the sandbox:
broken data becomes incidents (with diagnoses), ops get one email, the next run only
confirms what is known, and the tenant's schedule runs it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.monitor_activities import fetch_incidents
from starters.flows import decide
from starters.monitor import ensure_monitor_schedule, start_monitor
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.monitor import broken_data as broken
from tests.workflows.reconciliation.test_reconciliation import _completed
from tests.workflows.support import FAST, Harness, eventually
from workflows.ids import monitor_schedule_id
from workflows.monitor.models import MonitorResult

pytestmark = pytest.mark.integration

OPS_ALERT = "d-autobiz-ops-alert"


async def _ops_alerts(h: Harness) -> list[list[str]]:
    return [
        m["recipients"]
        for m in await h.sandbox.control.outbox()
        if m["request"]["template_id"] == OPS_ALERT
    ]


async def test_broken_data_becomes_incidents_once(harness: Harness) -> None:
    h = harness
    await broken.order(h.db, h.tenant, "stuck-1", "paid")
    receipt = await broken.receipt(
        h.db, h.tenant, f"refund:{h.tenant}:r1", "stripe.create_refund", amount_minor=9000
    )

    first = await (
        await start_monitor(h.client, h.config, task_queue=h.task_queue, key="1")
    ).result()
    assert isinstance(first, MonitorResult)
    assert first.by_kind == {"INV-03": 1, "INV-07": 1}
    assert first.new_incidents == 2 and not first.truncated
    assert set(first.checked) == {"ledger", "runs", "tenancy", "flows"}
    assert {(i.kind, i.entity_ref, i.status) for i in first.incidents} == {
        ("INV-03", "order:stuck-1:paid", "open"),
        ("INV-07", f"receipt:{receipt}", "open"),
    }
    assert await _ops_alerts(h) == [["ops@autobiz.test"]]

    second = await (
        await start_monitor(h.client, h.config, task_queue=h.task_queue, key="2")
    ).result()
    assert second.new_incidents == 0 and second.findings == 2
    rows = await fetch_incidents(h.db, h.tenant)
    assert len(rows) == 2 and {r.occurrences for r in rows} == {2}
    for row in rows:
        assert row.diagnosis["cause"] and row.diagnosis["recommended_action"]
        assert row.diagnosis["alternatives"][0]["rejected_because"]
    assert await _ops_alerts(h) == [["ops@autobiz.test"]]  # re-detections stay quiet
    await maybe_record(h.client, first.workflow_id, "invariant_monitor_incidents")


async def test_sound_data_is_quiet(harness: Harness) -> None:
    h = harness
    await broken.order(h.db, h.tenant, "fresh", "paid", updated_at=broken.NOW)
    result = await (await start_monitor(h.client, h.config, task_queue=h.task_queue)).result()
    assert (result.findings, result.new_incidents, result.incidents) == (0, 0, ())
    assert await _ops_alerts(h) == []


async def test_a_real_order_end_to_end_is_no_violation(harness: Harness) -> None:
    """A real OrderFulfill run (capture, Printful, fulfilment, emails: receipts, keys,
    trace and cost as the flow leaves them), aged past the settle time, finds nothing."""
    h = harness
    order_id, _ = await _completed(h)
    async with h.db.tenant(h.tenant) as s:  # as if it finished an hour ago
        await s.execute(
            "UPDATE order_state SET updated_at = now() - interval '1 hour' WHERE tenant_id = %s",
            (h.tenant,),
        )
        await s.execute(
            "UPDATE idempotency_keys SET last_seen_at = now() - interval '1 hour' "
            "WHERE tenant_id = %s",
            (h.tenant,),
        )
        receipts = await s.fetch_val(
            "SELECT count(*) FROM receipts WHERE tenant_id = %s", (h.tenant,)
        )
    assert receipts >= 4
    result = await (await start_monitor(h.client, h.config, task_queue=h.task_queue)).result()
    assert result.checked["runs"] == 1, (order_id, result.checked)
    assert (result.findings, result.incidents) == (0, ())


async def test_real_refunds_with_and_without_approval_are_no_violation(
    harness: Harness, approvers: Approvers
) -> None:
    """Refund runs as the flow leaves them: one above the threshold approved by finance,
    one below it (no approval needed); the FINANCIAL receipts satisfy their rule."""
    h = harness
    order_id, pi = await h.captured_order(in_ledger=True)
    above = await h.request_refund(order_id, pi, 6000, timing=FAST)
    await h.pending_request(above.id)
    await decide(h.client, above.id, await approvers.decision(h.client, above.id, "ana", True))
    assert (await above.result()).state == "refunded"
    below = await h.request_refund(order_id, pi, 1000, timing=FAST)
    assert (await below.result()).state == "refunded"
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "UPDATE idempotency_keys SET last_seen_at = now() - interval '1 hour' "
            "WHERE tenant_id = %s",
            (h.tenant,),
        )
    result = await (await start_monitor(h.client, h.config, task_queue=h.task_queue)).result()
    assert (result.findings, result.incidents) == (0, ())
    # Without its approval, the approved run's two FINANCIAL receipts (the Stripe refund,
    # its Shopify record) would each be a violation (INV-07).
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "UPDATE hitl_requests SET status = 'denied' WHERE tenant_id = %s AND workflow_id = %s",
            (h.tenant, above.id),
        )
    flagged = await (await start_monitor(h.client, h.config, task_queue=h.task_queue)).result()
    assert sorted(i.diagnosis["evidence"]["tool"] for i in flagged.incidents) == [
        "shopify.refund_create@1",
        "stripe.create_refund@1",
    ]
    assert {(i.kind, i.check_name) for i in flagged.incidents} == {
        ("INV-07", "financial_without_approval")
    }


async def test_schedule_is_created_once_and_runs(harness: Harness) -> None:
    h = harness
    schedule = h.client.get_schedule_handle(monitor_schedule_id(h.tenant))
    try:
        made = await ensure_monitor_schedule(h.client, h.config, task_queue=h.task_queue)
        again = await ensure_monitor_schedule(h.client, h.config, task_queue=h.task_queue)
        assert (made, again) == ("created", "unchanged")
        slower = h.config.model_copy(
            update={"monitor": h.config.monitor.model_copy(update={"every": timedelta(hours=6)})}
        )
        assert await ensure_monitor_schedule(h.client, slower, task_queue=h.task_queue) == (
            "updated"
        )
        described = await schedule.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=6)
        await schedule.trigger()

        async def finished() -> str | None:
            query = f"WorkflowType = 'InvariantMonitor' AND TenantId = '{h.tenant}'"
            async for wf in h.client.list_workflows(query):
                if wf.status is not None and wf.status.name == "COMPLETED":
                    return wf.id
            return None

        workflow_id = await eventually(finished, within=60, what="the scheduled run")
        assert workflow_id.startswith(f"monitor:{h.tenant}:scheduled-")
    finally:
        await schedule.delete()
