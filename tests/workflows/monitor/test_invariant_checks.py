"""Each invariant the monitor checks, broken on purpose in real PostgreSQL: the group's
read activity and its pure check find exactly the broken rows (and none of the sound
ones next to them), and recording a finding twice keeps one live incident."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.monitor_activities import (
    IncidentNotFoundError,
    IncidentTransitionError,
    MonitorActivities,
    fetch_incidents,
    move_incident,
)
from autobiz.db.database import Database
from kernel.config import BusinessConfig
from tests.workflows.monitor import broken_data as broken
from tests.workflows.support import tenant_config
from workflows.monitor.checks import (
    approval_findings,
    bound_findings,
    flow_findings,
    permission_findings,
    run_findings,
    side_effect_findings,
    tenancy_findings,
)
from workflows.monitor.models import (
    FactsRequest,
    Finding,
    FindingBatch,
    FlowFacts,
    LedgerFacts,
    MonitorInput,
    RunFacts,
    TenancyFacts,
)

pytestmark = pytest.mark.integration

TERMINAL = MonitorInput(tenant_id="x").terminal_states


def _request(tenant: str, older_than: timedelta = timedelta(minutes=10)) -> FactsRequest:
    return FactsRequest(
        tenant_id=tenant, as_of=broken.NOW, terminal_states=TERMINAL, older_than=older_than
    )


def _monitor(database: Database, config: BusinessConfig) -> MonitorActivities:
    return MonitorActivities(database, {config.tenant: config})


def _refs(findings: list[Finding]) -> dict[str, str]:
    return {f.entity_ref: f.check for f in findings}


async def test_inv05_a_side_effect_without_its_one_receipt(database: Database, tenant: str) -> None:
    missing = await broken.idempotency_key(database, tenant, "stripe.capture_payment@1")
    await broken.idempotency_key(database, tenant, "stripe.get_payment_intent@1")  # READ
    await broken.idempotency_key(database, tenant, "printful.create_order@1", with_receipt=True)
    mismatch = await broken.idempotency_key(
        database,
        tenant,
        "printful.confirm_order@1",
        with_receipt=True,
        receipt_external_key="autobiz:another-key",
    )
    monitor = _monitor(database, tenant_config(tenant))
    facts: LedgerFacts = await ActivityEnvironment().run(monitor.read_ledger, _request(tenant))
    found = side_effect_findings(facts)
    assert {f.check for f in found} == {"receipt_missing", "receipt_key_mismatch"}
    assert f"idempotency:{missing}" in _refs(found)
    (mismatched,) = [f for f in found if f.check == "receipt_key_mismatch"]
    assert mismatched.kind == "INV-05"
    assert mismatched.diagnosis.evidence["receipt_external_key"] == "autobiz:another-key"
    assert mismatch not in "".join(_refs(found))  # keyed by the receipt, not the key
    for f in found:
        assert f.diagnosis.alternatives and f.diagnosis.recommended_action


async def test_inv07_financial_receipt_without_the_approval_its_rule_required(
    database: Database, tenant: str
) -> None:
    # The demo config's refund rule: approval when amount_minor >= 5000.
    unapproved = await broken.receipt(
        database, tenant, f"refund:{tenant}:r1", "stripe.create_refund", amount_minor=9000
    )
    await broken.receipt(  # below the threshold: no approval needed
        database, tenant, f"refund:{tenant}:r2", "stripe.create_refund", amount_minor=1000
    )
    await broken.receipt(  # above it, approved
        database, tenant, f"refund:{tenant}:r3", "stripe.create_refund", amount_minor=9000
    )
    await broken.approval(database, tenant, f"refund:{tenant}:r3")
    denied = await broken.receipt(  # above it, the approval denied: still a violation
        database, tenant, f"refund:{tenant}:r4", "stripe.create_refund", amount_minor=7000
    )
    await broken.approval(database, tenant, f"refund:{tenant}:r4", status="denied")
    monitor = _monitor(database, tenant_config(tenant))
    facts: LedgerFacts = await ActivityEnvironment().run(monitor.read_ledger, _request(tenant))
    found = approval_findings(facts)
    assert _refs(found) == {
        f"receipt:{unapproved}": "financial_without_approval",
        f"receipt:{denied}": "financial_without_approval",
    }
    assert all(f.kind == "INV-07" for f in found)
    (first,) = [f for f in found if f.entity_ref == f"receipt:{unapproved}"]
    assert "input.amount_minor >= 5000" in first.diagnosis.cause


async def test_inv02_a_side_effect_by_a_tool_its_flow_is_not_granted(
    database: Database, tenant: str
) -> None:
    # order_fulfill is not granted shopify.refund_create (reconciliation and refund are).
    ungranted = await broken.receipt(
        database, tenant, f"order:{tenant}:x", "shopify.refund_create", side_effect="WRITE"
    )
    await broken.receipt(
        database, tenant, f"order:{tenant}:y", "stripe.capture_payment", amount_minor=100
    )
    await broken.receipt(
        database,
        tenant,
        f"reconcile-drift:{tenant}:1",
        "shopify.refund_create",
        side_effect="WRITE",
    )
    monitor = _monitor(database, tenant_config(tenant))
    facts: LedgerFacts = await ActivityEnvironment().run(monitor.read_ledger, _request(tenant))
    found = permission_findings(facts)
    assert _refs(found) == {f"receipt:{ungranted}": "tool_not_granted"}
    assert found[0].kind == "INV-02"
    assert found[0].diagnosis.evidence["workflow_type"] == "order_fulfill"


async def test_inv04_a_finished_run_without_trace_or_cost(database: Database, tenant: str) -> None:
    traced, untraced, unpriced = (f"order:{tenant}:{n}" for n in ("a", "b", "c"))
    await broken.order(database, tenant, "a", "completed", workflow_id=traced)
    await broken.trace(database, tenant, traced, tool="stripe.capture_payment@1", cost_usd="0.0001")
    await broken.order(database, tenant, "b", "completed", workflow_id=untraced)
    await broken.order(database, tenant, "c", "cancelled", workflow_id=unpriced)
    await broken.trace(database, tenant, unpriced, tool="stripe.cancel_payment@1")
    # Finished a moment ago: its trace may still be on its way, left for the next run.
    await broken.order(
        database, tenant, "d", "completed", workflow_id=f"order:{tenant}:d", updated_at=broken.NOW
    )
    await broken.order(database, tenant, "e", "paid", workflow_id=f"order:{tenant}:e")  # running
    monitor = _monitor(database, tenant_config(tenant))
    facts: RunFacts = await ActivityEnvironment().run(monitor.read_runs, _request(tenant))
    assert _refs(run_findings(facts)) == {
        f"run:{untraced}": "run_without_trace",
        f"run:{unpriced}": "run_without_cost",
    }


async def test_inv03_a_finished_run_past_its_bounds(database: Database, tenant: str) -> None:
    config = tenant_config(tenant)
    bounds = config.policy_for("order_fulfill").bounds
    busy, costly, fine = (f"order:{tenant}:{n}" for n in ("busy", "costly", "fine"))
    for order_id, workflow_id in (("busy", busy), ("costly", costly), ("fine", fine)):
        await broken.order(database, tenant, order_id, "completed", workflow_id=workflow_id)
    for _ in range(bounds.max_tool_calls + 1):
        await broken.trace(database, tenant, busy, tool="risk.assess@1", kind="tool_started")
    over = str(bounds.max_cost_usd + 1)
    await broken.trace(database, tenant, costly, tool="stripe.capture_payment@1", cost_usd=over)
    await broken.trace(database, tenant, fine, tool="risk.assess@1", kind="tool_started")
    monitor = _monitor(database, config)
    facts: RunFacts = await ActivityEnvironment().run(monitor.read_runs, _request(tenant))
    found = {f.entity_ref: f for f in bound_findings(facts)}
    assert set(found) == {f"run:{busy}", f"run:{costly}"}
    assert found[f"run:{busy}"].diagnosis.evidence["max_tool_calls"] == {
        "limit": bounds.max_tool_calls,
        "observed": bounds.max_tool_calls + 1,
    }
    assert "max_cost_usd" in found[f"run:{costly}"].diagnosis.evidence
    assert all(f.kind == "INV-03" and f.check == "bound_exceeded" for f in found.values())


async def test_inv06_a_row_that_names_another_tenants_workflow(
    database: Database, tenant: str
) -> None:
    foreign = await broken.receipt(
        database, tenant, "order:some-other-shop:1001", "stripe.capture_payment", amount_minor=1
    )
    await broken.receipt(
        database, tenant, f"order:{tenant}:1002", "stripe.capture_payment", amount_minor=1
    )
    await broken.receipt(database, tenant, "wf-made-up-1", "stripe.capture_payment", amount_minor=1)
    await broken.approval(database, tenant, "refund:some-other-shop:r9")
    monitor = _monitor(database, tenant_config(tenant))
    facts: TenancyFacts = await ActivityEnvironment().run(monitor.read_tenancy, _request(tenant))
    found = tenancy_findings(tenant, facts)
    refs = _refs(found)
    assert f"receipts:{foreign}" in refs
    assert [r for r in refs if r.startswith("hitl_requests:")]
    assert len(found) == 2 and all(f.kind == "INV-06" for f in found)


async def test_inv07_inv03_overdue_approvals_and_stuck_flows(
    database: Database, tenant: str
) -> None:
    overdue = await broken.approval(
        database,
        tenant,
        f"refund:{tenant}:r1",
        status="pending",
        expires_at=broken.NOW - timedelta(hours=2),
    )
    await broken.approval(  # expired a minute ago: within the grace
        database,
        tenant,
        f"refund:{tenant}:r2",
        status="pending",
        expires_at=broken.NOW - timedelta(minutes=1),
    )
    await broken.approval(database, tenant, f"refund:{tenant}:r3", status="pending")
    await broken.order(database, tenant, "stuck", "paid")  # 3 days in `paid`
    await broken.order(database, tenant, "printing", "in_production")  # 3 of 14 days
    await broken.order(database, tenant, "fresh", "paid", updated_at=broken.NOW)
    await broken.order(database, tenant, "done", "completed")
    input = MonitorInput(tenant_id=tenant)
    monitor = _monitor(database, tenant_config(tenant))
    facts: FlowFacts = await ActivityEnvironment().run(
        monitor.read_flows, _request(tenant, older_than=input.stuck_after)
    )
    assert _refs(flow_findings(facts, input, broken.NOW)) == {
        f"approval:{overdue}": "approval_overdue",
        "order:stuck:paid": "flow_stuck",
    }
    # The SLA is the tenant's: a shorter one for in_production finds the printing order.
    strict = input.model_copy(update={"stuck_after_by_state": {"in_production": timedelta(1)}})
    facts = await ActivityEnvironment().run(
        monitor.read_flows, _request(tenant, older_than=timedelta(1))
    )
    assert "order:printing:in_production" in _refs(flow_findings(facts, strict, broken.NOW))


async def _record(monitor: MonitorActivities, tenant: str, run: str, *findings: Finding) -> Any:
    return await ActivityEnvironment().run(
        monitor.record, FindingBatch(tenant_id=tenant, run_id=run, findings=findings)
    )


async def test_a_redetection_updates_the_live_incident_and_a_resolved_one_reopens(
    database: Database, tenant: str
) -> None:
    await broken.order(database, tenant, "stuck", "paid")
    input = MonitorInput(tenant_id=tenant)
    monitor = _monitor(database, tenant_config(tenant))
    facts = await ActivityEnvironment().run(
        monitor.read_flows, _request(tenant, older_than=input.stuck_after)
    )
    (finding,) = flow_findings(facts, input, broken.NOW)
    first = await _record(monitor, tenant, "monitor:x:1", finding)
    again = await _record(monitor, tenant, "monitor:x:1", finding)  # an activity retry
    later = await _record(monitor, tenant, "monitor:x:2", finding)  # the next run
    assert len(first.new_ids) == 1 and again.new_ids == () and later.new_ids == ()
    (row,) = later.rows
    assert row.incident_id == first.rows[0].incident_id
    assert (row.occurrences, row.first_run_id, row.last_run_id) == (2, "monitor:x:1", "monitor:x:2")
    assert row.diagnosis["alternatives"][0]["rejected_because"]
    assert len(await fetch_incidents(database, tenant)) == 1

    acked = await move_incident(database, tenant, row.incident_id, "acknowledged", actor="ana")
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "ana")
    assert (await _record(monitor, tenant, "monitor:x:3", finding)).new_ids == ()  # still live
    with pytest.raises(IncidentTransitionError):
        await move_incident(database, tenant, row.incident_id, "acknowledged", actor="ana")
    done = await move_incident(
        database, tenant, row.incident_id, "resolved", actor="omar", note="order closed by hand"
    )
    assert (done.status, done.resolved_by, done.resolution) == (
        "resolved",
        "omar",
        "order closed by hand",
    )
    reopened = await _record(monitor, tenant, "monitor:x:4", finding)
    assert len(reopened.new_ids) == 1 and reopened.new_ids[0] != row.incident_id
    with pytest.raises(IncidentNotFoundError):
        await move_incident(database, tenant, 10**12, "resolved", actor="omar")
