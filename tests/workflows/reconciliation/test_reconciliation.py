"""Reconciliation: drift injected behind AutoBiz's back (a refund made directly in Stripe,
a Printful order cancelled directly), found, recorded once, and handled as specified —
the projection repaired by itself, money questions only through an approval."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.reconciliation_activities import fetch_drift_rows
from starters.flows import decide
from starters.reconciliation import ensure_schedule, start_reconciliation
from tests.autobiz.cli.support import in_process_env, run_in_process
from tests.conftest import new_tenant
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.support.ledger import record_capture
from tests.support.postgres import ProvisionedDatabase
from tests.workflows.support import FAST, Harness, eventually, ship_printful
from workflows.common.models import ApprovalTiming
from workflows.ids import reconcile_schedule_id
from workflows.orders.models import OrderFulfillResult, ShipmentNotice
from workflows.reconciliation.models import (
    DriftRepairResult,
    DriftRow,
    ReconciliationResult,
)

pytestmark = pytest.mark.integration

SHORT = ApprovalTiming(
    timeout=timedelta(seconds=2), remind_before=timedelta(0), escalate_after=timedelta(0)
)


# -- helpers --------------------------------------------------------------------------


async def _in_production(h: Harness, price: str = "25.00") -> tuple[str, str, str, int]:
    """An OrderFulfill run waiting for its shipment: (order id, PI, workflow id, Printful id)."""
    order_id, pi = await h.authorized_order(price)
    handle = await h.start_order(order_id, pi)
    status = await h.status_when(handle.id, lambda s: s.state == "in_production")
    return order_id, pi, handle.id, int(status.detail["printful_order_id"])


async def _completed(h: Harness, price: str = "25.00") -> tuple[str, str]:
    """An order fulfilled end to end by AutoBiz: (order id, PI)."""
    order_id, pi, workflow_id, pf_id = await _in_production(h, price)
    tracking = await ship_printful(h.sandbox.control, pf_id)
    handle = h.client.get_workflow_handle(workflow_id, result_type=OrderFulfillResult)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    assert (await handle.result()).state == "completed"
    return order_id, pi


async def _refund_outside(h: Harness, pi: str, amount: int) -> str:
    """A refund made straight through Stripe (the dashboard, another app): no receipt."""
    refund = await h.clients.stripe.create_refund(
        payment_intent_id=pi, idempotency_key=f"outside-{uuid.uuid4()}", amount=amount
    )
    return refund.id


async def _reconcile(h: Harness, timing: ApprovalTiming = FAST) -> ReconciliationResult:
    handle = await start_reconciliation(
        h.client, h.config, task_queue=h.task_queue, key=uuid.uuid4().hex, timing=timing
    )
    return await handle.result()


async def _repair_result(h: Harness, workflow_id: str) -> DriftRepairResult:
    handle = h.client.get_workflow_handle(workflow_id, result_type=DriftRepairResult)
    result: DriftRepairResult = await handle.result()
    return result


def _by_kind(rows: tuple[DriftRow, ...] | list[DriftRow]) -> dict[str, DriftRow]:
    return {r.kind: r for r in rows}


async def _row(h: Harness, drift_id: int) -> DriftRow:
    rows = [r for r in await fetch_drift_rows(h.db, h.tenant) if r.drift_id == drift_id]
    assert len(rows) == 1
    return rows[0]


# -- the specified scenario -----------------------------------------------------------


async def test_outside_refund_and_printful_cancel_are_found_and_handled(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    refunded_order, refunded_pi = await _completed(h)
    cancelled_order, _, fulfil_id, pf_id = await _in_production(h)
    refund_id = await _refund_outside(h, refunded_pi, 1000)
    await h.clients.printful.cancel_order(pf_id)  # cancelled in Printful, not by AutoBiz

    result = await _reconcile(h)
    assert result.orders_checked >= 2 and result.payments_checked == 2
    rows = _by_kind(result.drifts)
    assert set(rows) == {"refund_outside", "printful_cancelled_outside"}
    refund, printful = rows["refund_outside"], rows["printful_cancelled_outside"]
    assert (refund.entity_ref, refund.order_id, refund.financial) == (
        refund_id,
        refunded_order,
        True,
    )
    assert (refund.status, refund.action) == ("pending_approval", "approval_requested")
    assert refund.actual["amount_minor"] == 1000 and refund.actual["currency"] == "USD"
    assert (printful.entity_ref, printful.order_id, printful.financial) == (
        f"printful:{pf_id}",
        cancelled_order,
        False,
    )
    assert (printful.status, printful.action) == ("repaired", "projection_set_exception")
    assert printful.resolved_at is not None and printful.actual["printful_status"] == "canceled"

    # Non-financial: the projection now says what is true (optimistic version bumped).
    async with h.db.tenant(h.tenant) as s:
        projection = await s.fetch_one(
            "SELECT state, version, data FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, cancelled_order),
        )
    assert projection is not None and projection["state"] == "exception"
    assert projection["data"]["exception"] == "printful_cancelled"
    assert projection["data"]["previous_state"] == "in_production"
    # Ops hear about it once (one summary email per run).
    ops = [
        m
        for m in await h.sandbox.control.outbox()
        if m["request"]["template_id"] == "d-autobiz-reconciliation-drift"
    ]
    assert [m["recipients"] for m in ops] == [["ops@autobiz.test"]]

    # Financial: nothing moved until finance approves; then it is recorded in Shopify.
    repair_id = result.repairs[str(refund.drift_id)]
    await h.pending_request(repair_id)
    hitl = await h.hitl_rows(repair_id)
    assert [(r["status"], r["required_role"], r["amount_minor"]) for r in hitl] == [
        ("pending", "finance", 1000)
    ]
    gid = f"gid://shopify/Order/{refunded_order}"
    assert (await h.clients.shopify.get_order(gid)).refunded.amount == Decimal("0")
    approved = await decide(
        h.client, repair_id, await approvers.decision(h.client, repair_id, "ana", True)
    )
    assert approved.status == "approved"
    done = await _repair_result(h, repair_id)
    assert (done.status, done.action) == ("repaired", "recorded_in_shopify")
    assert done.shopify_refund_id is not None
    assert (await h.clients.shopify.get_order(gid)).refunded.amount == Decimal("10.00")
    assert await h.refunded(refunded_pi) == 1000  # no second refund in Stripe
    assert [r.tool for r in await h.receipts(repair_id)] == ["shopify.refund_create"]
    row = await _row(h, refund.drift_id)
    assert (row.status, row.action) == ("repaired", "recorded_in_shopify")
    assert row.resolved_at is not None and row.details["decided_by"] == "ana"

    # Re-running finds what it knows: no new rows, no second approval.
    again = await _reconcile(h)
    assert [(r.drift_id, r.status, r.seen_count) for r in again.drifts] == [
        (refund.drift_id, "repaired", 2)
    ]
    assert again.repairs == {}
    assert len(await fetch_drift_rows(h.db, h.tenant)) == 2

    # RLS: another tenant sees none of these rows.
    other = await new_tenant(h.db)
    assert await fetch_drift_rows(h.db, other) == []
    async with h.db.tenant(other) as s:
        assert await s.fetch_val("SELECT count(*) FROM reconciliation") == 0

    await h.client.get_workflow_handle(fulfil_id).terminate("test over")
    await maybe_record(h.client, result.workflow_id, "reconciliation_drift")
    await maybe_record(h.client, repair_id, "reconcile_drift_approved")


async def test_deny_dismisses_and_expiry_fails_closed(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi = await _completed(h)
    first = await _refund_outside(h, pi, 300)
    result = await _reconcile(h)
    (row,) = result.drifts
    assert row.entity_ref == first
    repair_id = result.repairs[str(row.drift_id)]
    await h.pending_request(repair_id)
    deny = await approvers.decision(h.client, repair_id, "ana", False, reason="on purpose")
    await decide(h.client, repair_id, deny)
    denied = await _repair_result(h, repair_id)
    assert (denied.status, denied.action) == ("dismissed", "dismissed")
    assert (await _row(h, row.drift_id)).details["reason"] == "on purpose"

    # A second outside refund; nobody answers in time.
    second = await _refund_outside(h, pi, 200)
    result = await _reconcile(h, timing=SHORT)
    rows = {r.entity_ref: r for r in result.drifts}
    assert rows[first].status == "dismissed"  # never asked twice
    assert list(result.repairs) == [str(rows[second].drift_id)]
    with pytest.raises(WorkflowFailureError) as failed:
        await _repair_result(h, result.repairs[str(rows[second].drift_id)])
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "APPROVAL_EXPIRED"
    expired = await _row(h, rows[second].drift_id)
    assert (expired.status, expired.action, expired.resolved_at) == (
        "open",
        "approval_expired",
        None,
    )
    # Fail closed: nothing was written anywhere.
    gid = f"gid://shopify/Order/{order_id}"
    assert (await h.clients.shopify.get_order(gid)).refunded.amount == Decimal("0")
    assert await h.refunded(pi) == 500
    for repair in (repair_id, *result.repairs.values()):
        assert [r.tool for r in await h.receipts(repair) if r.tool != "sendgrid.send_email"] == []


async def test_capture_drift_is_acknowledged_or_dismissed(
    harness: Harness, approvers: Approvers
) -> None:
    """Our capture receipts disagree with Stripe: one says 25.00 where Stripe received
    30.00, one says captured where Stripe holds an uncaptured authorisation. And an outside
    refund on an order Shopify does not know: nothing to record it on, so it is
    acknowledged like them."""
    h = harness
    mismatched = await h.authorize(3000, "7001", capture=True)
    await record_capture(h.db, h.tenant, "7001", mismatched, 2500)
    uncaptured = await h.authorize(4000, "7002")
    await record_capture(h.db, h.tenant, "7002", uncaptured, 4000)
    unknown = await h.authorize(1500, "7003", capture=True)
    await record_capture(h.db, h.tenant, "7003", unknown, 1500)
    await _refund_outside(h, unknown, 500)

    result = await _reconcile(h)
    rows = _by_kind(result.drifts)
    assert set(rows) == {"amount_mismatch", "capture_missing", "refund_outside"}
    mismatch, missing = rows["amount_mismatch"], rows["capture_missing"]
    assert mismatch.entity_ref == mismatched and mismatch.financial
    assert mismatch.expected["amount_received_minor"] == 2500
    assert mismatch.actual["amount_received_minor"] == 3000
    assert missing.entity_ref == uncaptured and missing.actual["status"] == "requires_capture"
    assert {r.status for r in result.drifts} == {"pending_approval"}
    assert rows["refund_outside"].order_id is None  # no projection row for 7003

    orphan_id = result.repairs[str(rows["refund_outside"].drift_id)]
    await h.pending_request(orphan_id)
    assert [r["action"] for r in await h.hitl_rows(orphan_id)] == ["acknowledge_refund_outside"]
    await decide(h.client, orphan_id, await approvers.decision(h.client, orphan_id, "ana", True))
    orphan = await _repair_result(h, orphan_id)
    assert (orphan.status, orphan.action, orphan.shopify_refund_id) == (
        "repaired",
        "acknowledged",
        None,
    )

    ack_id, dismiss_id = (
        result.repairs[str(mismatch.drift_id)],
        result.repairs[str(missing.drift_id)],
    )
    await h.pending_request(ack_id)
    await h.pending_request(dismiss_id)
    hitl = await h.hitl_rows(ack_id)
    assert [(r["action"], r["amount_minor"]) for r in hitl] == [
        ("acknowledge_amount_mismatch", 500)
    ]
    await decide(h.client, ack_id, await approvers.decision(h.client, ack_id, "ana", True))
    await decide(h.client, dismiss_id, await approvers.decision(h.client, dismiss_id, "ana", False))
    assert (await _repair_result(h, ack_id)).action == "acknowledged"
    assert (await _repair_result(h, dismiss_id)).status == "dismissed"
    assert (await _row(h, mismatch.drift_id)).status == "repaired"
    assert (await _row(h, missing.drift_id)).status == "dismissed"
    # Acknowledging moves no money: the authorisation is still only an authorisation.
    assert (await h.clients.stripe.retrieve_payment_intent(uncaptured)).status == (
        "requires_capture"
    )


async def test_clean_order_has_no_drift(harness: Harness) -> None:
    h = harness
    await _completed(h)
    result = await _reconcile(h)
    assert result.orders_checked == 1 and result.payments_checked == 1
    assert result.drifts == () and result.repairs == {}
    assert await fetch_drift_rows(h.db, h.tenant) == []
    status = await h.client.get_workflow_handle(result.workflow_id).describe()
    assert status.status is not None and status.status.name == "COMPLETED"


# -- schedule and CLI ------------------------------------------------------------------


async def test_schedule_is_created_once_and_runs(harness: Harness) -> None:
    h = harness
    schedule = h.client.get_schedule_handle(reconcile_schedule_id(h.tenant))
    try:
        assert await ensure_schedule(h.client, h.config, task_queue=h.task_queue) == "created"
        assert await ensure_schedule(h.client, h.config, task_queue=h.task_queue) == "unchanged"
        hourly = h.config.model_copy(
            update={
                "reconciliation": h.config.reconciliation.model_copy(
                    update={"every": timedelta(hours=2), "window": timedelta(hours=48)}
                )
            }
        )
        assert await ensure_schedule(h.client, hourly, task_queue=h.task_queue) == "updated"
        ids = [s.id async for s in await h.client.list_schedules()]
        assert ids.count(reconcile_schedule_id(h.tenant)) == 1
        described = await schedule.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=2)

        await schedule.trigger()  # what the interval would do

        async def finished() -> str | None:
            query = f"WorkflowType = 'Reconciliation' AND TenantId = '{h.tenant}'"
            async for wf in h.client.list_workflows(query):
                if wf.status is not None and wf.status.name == "COMPLETED":
                    return wf.id
            return None

        workflow_id = await eventually(finished, within=60, what="the scheduled run")
        assert workflow_id.startswith(f"reconcile:{h.tenant}:scheduled-")
        result = await h.client.get_workflow_handle(
            workflow_id, result_type=ReconciliationResult
        ).result()
        assert result.window_end - result.window_start == timedelta(hours=48)
    finally:
        await schedule.delete()


async def _cli(env: dict[str, str], *args: str) -> str:
    return (await run_in_process(env, *args)).output


async def test_cli_runs_lists_and_schedules(
    harness: Harness,
    temporal_env: WorkflowEnvironment,
    pg_database: ProvisionedDatabase,
    tmp_path: Path,
) -> None:
    h = harness
    env = in_process_env(h, temporal_env, pg_database, tmp_path)
    order_id, pi = await h.captured_order("20.00")
    await record_capture(h.db, h.tenant, order_id, pi, 2000)
    refund_id = await _refund_outside(h, pi, 700)

    ran = json.loads(await _cli(env, "reconcile", "run", "--tenant", h.tenant, "--json"))
    assert [(d["kind"], d["entity_ref"], d["status"]) for d in ran["drifts"]] == [
        ("refund_outside", refund_id, "pending_approval")
    ]
    repair_id = next(iter(ran["repairs"].values()))
    await h.pending_request(repair_id)
    human = await _cli(env, "reconcile", "list", "--tenant", h.tenant)
    assert "refund_outside" in human and refund_id in human and "7.00 USD" in human
    listed = json.loads(await _cli(env, "reconcile", "list", "--json"))
    assert [d["drift_id"] for d in listed] == [ran["drifts"][0]["drift_id"]]

    schedule = h.client.get_schedule_handle(reconcile_schedule_id(h.tenant))
    try:
        made = json.loads(await _cli(env, "reconcile", "schedule", "--json"))
        assert [(d["tenant"], d["outcome"]) for d in made] == [(h.tenant, "created")]
        again = json.loads(await _cli(env, "reconcile", "schedule", "--json"))
        assert [d["outcome"] for d in again] == ["unchanged"]
    finally:
        await schedule.delete()
        await h.client.get_workflow_handle(repair_id).terminate("test over")
