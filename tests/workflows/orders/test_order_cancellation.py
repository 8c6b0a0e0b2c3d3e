"""WF04 OrderCancellation end to end: provider state in the sandbox, receipts, approvals,
the exception branch, and a running OrderFulfill told to stop."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError

from autobiz.providers.printful_client import OrderItem, Recipient
from kernel.state import RunSummary
from starters.decisions import sign_decision
from starters.flows import decide, flow_status
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.support import SHIP_TO, Harness
from workflows.common.models import ApprovalTiming
from workflows.ids import (
    ORDER_CANCELLATION,
    cancellation_workflow_id,
    exception_workflow_id,
    printful_external_id,
)
from workflows.orders.models import OrderCancellationResult

pytestmark = pytest.mark.integration

CANCELLED_TEMPLATE = "d-autobiz-order-cancelled"
OPS_TEMPLATE = "d-autobiz-ops-alert"


async def _printful_draft(h: Harness, order_id: str) -> int:
    """The Printful draft an OrderFulfill would have made for this order."""
    order = await h.clients.printful.create_order(
        external_id=printful_external_id(h.tenant, order_id),
        recipient=Recipient.model_validate(SHIP_TO.model_dump()),
        items=[OrderItem(catalog_variant_id=4012, quantity=1)],
    )
    return order.id


async def _printful_status(h: Harness, pf_id: int) -> str:
    return (await h.clients.printful.get_order(pf_id)).status


async def _pi(h: Harness, pi: str) -> tuple[str, int]:
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    return intent.status, intent.amount_received


async def _shopify_cancelled(h: Harness, order_id: str) -> bool:
    order = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    return order.cancelled_at is not None


async def _templates(h: Harness) -> list[tuple[str, list[str]]]:
    outbox = await h.sandbox.control.outbox()
    return [(m["request"]["template_id"], m["recipients"]) for m in outbox]


async def test_draft_and_authorisation_are_cancelled_and_voided(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    pf_id = await _printful_draft(h, order_id)

    handle = await h.request_cancellation(order_id, pi)
    assert handle.id == cancellation_workflow_id(h.tenant, order_id)
    result = await handle.result()
    assert result.state == "cancelled" and result.reason is None
    assert result.payment_action == "void" and result.amount_minor == 2500
    assert result.printful_order_id == pf_id and result.printful_status == "canceled"
    assert result.shopify_cancelled and result.email_message_id
    assert not result.fulfillment_stopped  # no OrderFulfill was running

    # Provider truth: Printful cancelled, the authorisation voided, Shopify cancelled.
    assert await _printful_status(h, pf_id) == "canceled"
    assert await _pi(h, pi) == ("canceled", 0)
    assert await _shopify_cancelled(h, order_id)
    assert await _templates(h) == [(CANCELLED_TEMPLATE, ["customer@example.com"])]
    # One receipt per side effect; the void carries its amount.
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts] == [
        "printful.cancel_order",
        "stripe.cancel_payment",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    void = receipts[1]
    assert void.amount_minor == 2500 and void.currency == "USD"
    assert void.external_key.startswith("autobiz:")
    assert await h.hitl_rows(handle.id) == []  # 25.00 is below the void threshold
    # The projection: this flow owned the order once nothing else was running.
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT state, data FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )
    assert row is not None and row["state"] == "cancelled"
    assert row["data"]["cancellation_workflow_id"] == handle.id
    status = await flow_status(h.client, handle.id)
    assert status.state == "cancelled" and status.error is None
    trace = await handle.query("kernel_trace", result_type=RunSummary)
    decisions = [e.outcome for e in trace.entries if e.kind == "decision"]
    assert "fulfillment_not_running" in decisions and trace.cost_micros > 0
    await maybe_record(h.client, handle.id, "order_cancellation_voided")


async def test_captured_below_threshold_is_refunded_without_approval(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.captured_order("40.00")

    result = await (await h.request_cancellation(order_id, pi)).result()
    assert result.state == "cancelled" and result.payment_action == "refund"
    assert result.stripe_refund_id and result.amount_minor == 4000
    assert result.printful_order_id is None  # never reached Printful: nothing to cancel
    assert await h.refunded(pi) == 4000
    assert await _shopify_cancelled(h, order_id)
    wf_id = cancellation_workflow_id(h.tenant, order_id)
    assert [r.tool for r in await h.receipts(wf_id)] == [
        "stripe.create_refund",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    assert await h.hitl_rows(wf_id) == []


async def test_captured_above_threshold_waits_for_approval(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi = await h.captured_order("80.00")
    pf_id = await _printful_draft(h, order_id)

    handle = await h.request_cancellation(order_id, pi)
    request_id = await h.pending_request(handle.id)
    # A duplicate request attaches to the running workflow: one run.
    again = await h.request_cancellation(order_id, pi)
    assert again.id == handle.id and again.result_run_id == handle.result_run_id
    # The decision comes before anything changes: nothing cancelled, nothing refunded.
    assert await _printful_status(h, pf_id) == "draft"
    assert await h.refunded(pi) == 0
    assert not await _shopify_cancelled(h, order_id)
    rows = await h.pending_rows(handle.id)
    assert [(r["status"], r["required_role"], r["amount_minor"]) for r in rows] == [
        ("pending", "finance", 8000)
    ]

    decided = await decide(
        h.client, handle.id, await approvers.decision(h.client, handle.id, "ana", True)
    )
    assert decided.status == "approved" and decided.request_id == request_id
    result = await handle.result()
    assert result.state == "cancelled" and result.approval is not None
    assert result.approval.decided_by == "ana"
    assert await h.refunded(pi) == 8000
    assert await _printful_status(h, pf_id) == "canceled"
    assert await _shopify_cancelled(h, order_id)
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts] == [
        "printful.cancel_order",
        "stripe.create_refund",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    assert receipts[1].amount_minor == 8000
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("approved", "ana")]


async def test_printful_in_production_goes_to_the_exception_flow(
    harness: Harness, approvers: Approvers
) -> None:
    """No OrderFulfill running, the Printful order in production: the cancellation waits
    on a FulfillmentException; cancel_and_refund voids the authorisation and cancels in
    Shopify, leaving the Printful order to ship (see test_order_cancellation_in_production
    for the other choices, with OrderFulfill running)."""
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    pf_id = await _printful_draft(h, order_id)
    await h.clients.printful.confirm_order(pf_id)
    await h.sandbox.control.advance_printful(pf_id, "start")  # in production now

    handle = await h.request_cancellation(order_id, pi)
    child_id = exception_workflow_id(h.tenant, order_id, "cancel-requested")
    request_id = await h.pending_request(child_id)
    status = await flow_status(h.client, handle.id)
    assert status.state == "exception" and status.detail["exception"] == "printful_in_production"
    # Nothing cancelled, no money moved, no ops email (the escalation is the notice).
    assert await _pi(h, pi) == ("requires_capture", 0)
    assert not await _shopify_cancelled(h, order_id)
    assert await _templates(h) == []
    decision = sign_decision(
        approvers.keys["omar"],
        tenant_id=h.tenant,
        workflow_id=child_id,
        request_id=request_id,
        approver="omar",
        approve=True,
        choice="cancel_and_refund",
    )
    assert (await decide(h.client, child_id, decision)).status == "approved"
    result = await handle.result()
    assert result.state == "cancelled" and result.exception is not None
    assert result.exception.kind == "printful_in_production"
    assert result.exception.printful_order_id == pf_id
    assert result.exception_workflow_id == child_id and result.exception_outcome == "cancelling"
    assert result.payment_action == "void" and result.shopify_cancelled
    assert await _printful_status(h, pf_id) == "inprocess"  # it ships anyway
    assert await _pi(h, pi) == ("canceled", 0)
    assert await _shopify_cancelled(h, order_id)
    assert await _templates(h) == [(CANCELLED_TEMPLATE, ["customer@example.com"])]
    assert [r.tool for r in await h.receipts(handle.id)] == [
        "stripe.cancel_payment",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]


async def test_approval_expiry_fails_closed(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("150.00")
    pf_id = await _printful_draft(h, order_id)
    timing = ApprovalTiming(
        timeout=timedelta(seconds=2), remind_before=timedelta(0), escalate_after=timedelta(0)
    )
    handle = await h.request_cancellation(order_id, pi, timing=timing)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "APPROVAL_EXPIRED"
    # Fail closed: nothing voided, nothing cancelled anywhere.
    assert await _pi(h, pi) == ("requires_capture", 0)
    assert await _printful_status(h, pf_id) == "draft"
    assert not await _shopify_cancelled(h, order_id)
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert set(tools) <= {"sendgrid.send_email"}  # only the "approval expired" notices
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["required_role"]) for r in rows] == [("expired", "finance,ops_lead")]
    assert (await flow_status(h.client, handle.id)).state == "expired"
    templates = [t for t, _ in await _templates(h)]
    assert "d-autobiz-approval-expired" in templates and CANCELLED_TEMPLATE not in templates


async def test_failure_after_the_takeover_alerts_ops(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    pf_id = await _printful_draft(h, order_id)
    # Printful refuses the cancel for a reason that no retry fixes.
    await h.sandbox.control.fault("error", "/printful/v2/orders/*", method="DELETE", status=400)
    handle = await h.request_cancellation(order_id, pi)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "PROVIDER_INVALID_REQUEST"
    # Nothing after the failed step happened; ops hold the half-done order.
    assert await _printful_status(h, pf_id) == "draft"
    assert await _pi(h, pi) == ("requires_capture", 0)
    assert not await _shopify_cancelled(h, order_id)
    assert await _templates(h) == [(OPS_TEMPLATE, ["ops@autobiz.test"])]
    status = await flow_status(h.client, handle.id)
    assert status.state == "failed" and status.detail["compensated"] == ["alert_ops"]
    assert status.error is not None and "PROVIDER_INVALID_REQUEST" in status.error


async def test_denied_cancellation_moves_nothing(harness: Harness, approvers: Approvers) -> None:
    h = harness
    order_id, pi = await h.authorized_order("150.00")
    pf_id = await _printful_draft(h, order_id)
    handle = await h.request_cancellation(order_id, pi)
    await h.pending_request(handle.id)
    kept = await approvers.decision(h.client, handle.id, "omar", False, reason="customer kept it")
    await decide(h.client, handle.id, kept)
    result = await handle.result()
    assert result.state == "rejected" and result.reason == "customer kept it"
    assert result.approval is not None and result.approval.status == "denied"
    assert await _pi(h, pi) == ("requires_capture", 0)
    assert await _printful_status(h, pf_id) == "draft"
    assert not await _shopify_cancelled(h, order_id)
    assert await h.receipts(handle.id) == []
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("denied", "omar")]


async def test_running_fulfilment_waiting_for_approval_is_stopped(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi = await h.authorized_order("600.00")
    fulfil = await h.start_order(order_id, pi)
    await h.pending_request(fulfil.id)  # the capture waits for fraud_reviewer/finance

    handle = await h.request_cancellation(order_id, pi)
    await h.pending_request(handle.id)  # voiding 600.00 needs finance/ops_lead first
    assert (await flow_status(h.client, fulfil.id)).state == "awaiting_approval"
    await decide(h.client, handle.id, await approvers.decision(h.client, handle.id, "omar", True))

    stopped = await fulfil.result()
    assert stopped.state == "cancelled" and stopped.captured_minor == 0
    result = await handle.result()
    assert result.state == "cancelled" and result.fulfillment_stopped
    assert result.payment_action == "void" and result.amount_minor == 60000
    # Never captured: the authorisation is voided.
    assert await _pi(h, pi) == ("canceled", 0)
    assert await _shopify_cancelled(h, order_id)
    assert [r.tool for r in await h.receipts(fulfil.id)] == []
    # OrderFulfill's own capture request was withdrawn, not left pending; the
    # cancellation's approval was asked once and reused after the second survey.
    rows = await h.hitl_rows(fulfil.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("denied", "cli:operator")]
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("approved", "omar")]
    trace = await handle.query("kernel_trace", result_type=RunSummary)
    assert "fulfillment_stopped" in [e.outcome for e in trace.entries if e.kind == "decision"]
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT state, version, data FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )
    # One row, written first by OrderFulfill and continued by the cancellation.
    assert row is not None and row["state"] == "cancelled" and row["version"] > 3
    assert row["data"]["workflow_id"] == fulfil.id
    assert row["data"]["cancellation_workflow_id"] == handle.id


async def test_fulfilment_in_production_wait_is_stopped_and_refunded(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    fulfil = await h.start_order(order_id, pi)
    status = await h.status_when(fulfil.id, lambda s: s.state == "in_production")
    pf_id = int(status.detail["printful_order_id"])
    assert await _printful_status(h, pf_id) == "pending"  # confirmed, not yet made

    result = await (await h.request_cancellation(order_id, pi)).result()
    stopped = await fulfil.result()
    assert stopped.state == "cancelled" and stopped.captured_minor == 2500
    assert (await flow_status(h.client, fulfil.id)).detail["cancelled_in"] == "in_production"
    assert result.state == "cancelled" and result.fulfillment_stopped
    assert result.payment_action == "refund" and result.amount_minor == 2500
    assert await _printful_status(h, pf_id) == "canceled"
    assert await h.refunded(pi) == 2500
    assert await _shopify_cancelled(h, order_id)
    # OrderFulfill compensated nothing itself: the refund is the cancellation's, once.
    assert [r.tool for r in await h.receipts(fulfil.id)] == [
        "stripe.capture_payment",
        "printful.create_order",
        "printful.confirm_order",
    ]
    assert [r.tool for r in await h.receipts(result.workflow_id)] == [
        "printful.cancel_order",
        "stripe.create_refund",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]


async def test_started_by_the_ingress_without_context(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("30.00")
    wf_id = cancellation_workflow_id(h.tenant, order_id)
    trigger = {
        "tenant_id": h.tenant,
        "workflow_id": wf_id,
        "order_id": order_id,
        "payment_intent": pi,
        "source": "shopify",
        "topic": "orders/cancelled",
        "event_id": 1,
        "unexpected_field": "ignored",
    }
    envelope = {
        "tenant_id": h.tenant,
        "event_id": 1,
        "dedup_id": f"shopify:{uuid.uuid4()}",
        "source": "shopify",
        "provider_event_id": str(uuid.uuid4()),
        "topic": "orders/cancelled",
        "entity_key": f"order:{order_id}",
        "order_id": order_id,
        "payment_intent": None,
        "payload_sha256": "0" * 64,
        "payload": {"id": order_id},
        "received_at": datetime.now(UTC).isoformat(),
        "timeout_released": False,
    }
    handle = await h.client.start_workflow(
        ORDER_CANCELLATION.type,
        trigger,
        id=wf_id,
        task_queue=h.task_queue,
        result_type=OrderCancellationResult,
        start_signal="shopify_event",
        start_signal_args=[envelope],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    result = await handle.result()
    assert result.state == "cancelled" and result.payment_action == "void"
    assert result.payment_intent_id == pi
    assert await _pi(h, pi) == ("canceled", 0)
    assert await _shopify_cancelled(h, order_id)
    status = await flow_status(h.client, wf_id)
    assert status.detail["shopify_events"] == ["orders/cancelled"]


async def test_payment_of_another_order_is_rejected(harness: Harness) -> None:
    h = harness
    _, foreign_pi = await h.authorized_order("20.00")
    # The order names (through its Shopify transaction) a PaymentIntent of another order.
    seeded = await h.sandbox.control.seed_shopify_order(
        shop=h.clients.shop_domain,
        email="customer@example.com",
        financial_status="authorized",
        payment_intent=foreign_pi,
        line_items=[{"title": "Tee", "quantity": 1, "price": "20.00", "sku": "PF-4012"}],
    )
    order_id = str(seeded["legacy_id"])
    result = await (await h.request_cancellation(order_id, None)).result()
    assert result.state == "rejected" and result.reason is not None
    assert "another order" in result.reason
    assert await _pi(h, foreign_pi) == ("requires_capture", 0)
    assert not await _shopify_cancelled(h, order_id)
    assert await h.receipts(cancellation_workflow_id(h.tenant, order_id)) == []
