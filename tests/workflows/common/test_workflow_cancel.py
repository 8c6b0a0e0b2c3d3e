"""An operator cancels a running flow from the Temporal side (`temporal workflow cancel`,
the Web UI's Cancel): the flow undoes what its saga holds, closes a request that was
waiting for approval, records the state, and ends CANCELLED — nothing half-done, nothing
left in the approval backlog."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from activities.reconciliation_activities import fetch_drift_rows
from starters.reconciliation import start_reconciliation
from tests.support.ledger import record_capture
from tests.workflows.support import FAST, Harness, eventually
from workflows.common.approvals import FLOW_CANCELLED
from workflows.ids import drift_workflow_id

pytestmark = pytest.mark.integration


async def _cancelled(h: Harness, workflow_id: str) -> None:
    handle = h.client.get_workflow_handle(workflow_id)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_cancel_while_waiting_for_approval_closes_the_request(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("600.00")
    handle = await h.start_order(order_id, pi)
    [row] = await h.pending_rows(handle.id)
    await _cancelled(h, handle.id)
    [closed] = await h.hitl_rows(handle.id)
    assert closed["request_id"] == row["request_id"]
    assert (closed["status"], closed["decided_by"]) == ("denied", FLOW_CANCELLED)
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    attrs = (await handle.describe()).typed_search_attributes
    assert [p.value for p in attrs if p.key.name == "ApprovalPending"] == [False]
    assert [p.value for p in attrs if p.key.name == "FlowState"] == ["cancelled"]


async def test_cancel_after_the_capture_refunds_it(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    # Printful takes its time over the draft: the operator cancels meanwhile.
    await h.sandbox.control.fault("latency", "/printful/v2/orders", method="POST", latency_ms=4000)
    handle = await h.start_order(order_id, pi)
    await h.status_when(handle.id, lambda s: "captured_minor" in s.detail)

    async def drafting() -> bool | None:
        desc = await handle.describe()
        names = [a.activity_type.name for a in desc.raw_description.pending_activities]
        return True if "printful.create_order@1" in names else None

    await eventually(drafting, what="the Printful draft call in flight")
    await _cancelled(h, handle.id)

    async def refunded() -> int | None:
        page = await h.clients.stripe.list_refunds(payment_intent_id=pi)
        total = sum(r.amount for r in page.refunds if r.status in ("succeeded", "pending"))
        return total or None

    assert await eventually(refunded, what="the capture's refund") == 2500
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert tools.count("stripe.capture_payment") == 1 and tools.count("stripe.create_refund") == 1
    status = await h.status_when(handle.id, lambda s: s.state == "cancelled")
    assert status.detail["compensated"] == ["refund_capture"]


async def test_cancel_of_an_order_cancellation_waiting_for_approval_changes_nothing(
    harness: Harness,
) -> None:
    h = harness
    order_id, pi = await h.authorized_order("150.00")  # voiding it needs finance/ops_lead
    handle = await h.request_cancellation(order_id, pi)
    [row] = await h.pending_rows(handle.id)

    async def waiting() -> bool | None:
        attrs = (await handle.describe()).typed_search_attributes
        pending = [p.value for p in attrs if p.key.name == "ApprovalPending"]
        return True if pending == [True] else None

    await eventually(waiting, what="the cancellation's approval wait")
    await _cancelled(h, handle.id)
    [closed] = await h.hitl_rows(handle.id)
    assert closed["request_id"] == row["request_id"]
    assert (closed["status"], closed["decided_by"]) == ("denied", FLOW_CANCELLED)
    # Nothing was voided, cancelled or sent: no receipt, the authorisation as it was.
    assert await h.receipts(handle.id) == []
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    status = await h.status_when(handle.id, lambda s: s.state == "abandoned")
    assert status.detail["cancelled_in"] == "awaiting_approval"


async def test_cancel_of_a_refund_waiting_for_approval_moves_no_money(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.captured_order("100.00")
    handle = await h.request_refund(order_id, pi, 6000)  # 60.00: finance approves first
    [row] = await h.pending_rows(handle.id)

    async def waiting() -> bool | None:
        attrs = (await handle.describe()).typed_search_attributes
        pending = [p.value for p in attrs if p.key.name == "ApprovalPending"]
        return True if pending == [True] else None

    await eventually(waiting, what="the refund's approval wait")
    await _cancelled(h, handle.id)
    [closed] = await h.hitl_rows(handle.id)
    assert closed["request_id"] == row["request_id"]
    assert (closed["status"], closed["decided_by"]) == ("denied", FLOW_CANCELLED)
    # No Stripe refund, no Shopify refund, no email: no receipt.
    assert await h.receipts(handle.id) == []
    assert await h.refunded(pi) == 0
    status = await h.status_when(handle.id, lambda s: s.state == "cancelled")
    assert status.error is None


async def _waits_for_approval(workflow_id: str, h: Harness) -> None:
    """Until the flow waits on its approval (the request's row written, not just asked)."""
    handle = h.client.get_workflow_handle(workflow_id)

    async def waiting() -> bool | None:
        attrs = (await handle.describe()).typed_search_attributes
        pending = [p.value for p in attrs if p.key.name == "ApprovalPending"]
        return True if pending == [True] else None

    await eventually(waiting, what=f"the approval wait of {workflow_id}")


async def test_cancel_of_a_drift_repair_waiting_for_approval_reopens_its_row(
    harness: Harness,
) -> None:
    h = harness
    order_id, pi = await h.captured_order("20.00")
    await record_capture(h.db, h.tenant, order_id, pi, 2000)
    await h.clients.stripe.create_refund(  # made in Stripe, behind AutoBiz's back
        payment_intent_id=pi, idempotency_key=f"outside-{uuid.uuid4()}", amount=700
    )
    reconciliation = await start_reconciliation(
        h.client, h.config, task_queue=h.task_queue, key=uuid.uuid4().hex, timing=FAST
    )
    (drift,) = (await reconciliation.result()).drifts
    repair_id = drift_workflow_id(h.tenant, drift.drift_id)
    [row] = await h.pending_rows(repair_id)
    await _waits_for_approval(repair_id, h)
    await _cancelled(h, repair_id)
    [closed] = await h.hitl_rows(repair_id)
    assert closed["request_id"] == row["request_id"]
    assert (closed["status"], closed["decided_by"]) == ("denied", FLOW_CANCELLED)
    # Nothing recorded in Shopify; the drift is open again, for the next run to ask.
    assert await h.receipts(repair_id) == []
    shopify = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    assert shopify.refunded.amount == Decimal("0")
    [after] = [r for r in await fetch_drift_rows(h.db, h.tenant) if r.drift_id == drift.drift_id]
    assert (after.status, after.action) == ("open", "repair_cancelled")
    status = await h.status_when(repair_id, lambda s: s.state == "cancelled")
    assert status.error is None
