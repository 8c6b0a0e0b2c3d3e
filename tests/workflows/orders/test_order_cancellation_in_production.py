"""WF04 → WF06: a cancellation of an order Printful is already making goes to a
FulfillmentException (``cancel_in_production``), whose escalation decides; the outcome is
judged at the sandbox's Stripe, Printful, Shopify and SendGrid, and in both flows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from autobiz.db.database import Database
from starters.flows import decide, flow_status
from tests.ingress.test_end_to_end import delivering_webhooks
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.orders.test_fulfillment_exception import (
    authorized_in_production,
    exception_result,
    printful_order,
    trace_decisions,
)
from tests.workflows.support import Harness, ship_printful
from workflows.ids import cancellation_workflow_id, exception_workflow_id
from workflows.orders.models import OrderCancellationResult, OrderFulfillResult

pytestmark = pytest.mark.integration

CANCELLED_TEMPLATE = "d-autobiz-order-cancelled"
PROBLEM_TEMPLATE = "d-autobiz-fulfillment-problem"
OPS_TEMPLATE = "d-autobiz-ops-alert"


async def _making(h: Harness) -> tuple[str, str, Any, int]:
    """An order OrderFulfill captured and sent to Printful, which started making it:
    (order id, PaymentIntent, OrderFulfill's handle, Printful order id)."""
    order_id, pi, handle, pf_id = await authorized_in_production(h)
    await h.sandbox.control.advance_printful(pf_id, "start")  # inprocess: too late
    return order_id, pi, handle, pf_id


async def _escalation(h: Harness, order_id: str) -> str:
    """The exception child the cancellation waits on, once its request is pending; the
    cancellation's status shows the request."""
    child_id = exception_workflow_id(h.tenant, order_id, "cancel-requested")
    status = await h.status_when(
        child_id, lambda s: s.approval is not None and s.approval.status == "pending", within=60
    )
    assert status.approval is not None
    assert status.approval.options == ("contact_customer", "cancel_and_refund")
    diagnosis = status.detail["diagnosis"]
    assert diagnosis["cause"] == "cancel_in_production"
    assert diagnosis["recommended"] == "contact_customer" and not diagnosis["automatic"]
    assert {a["action"] for a in diagnosis["alternatives"]} >= {"cancel_and_refund", "fix"}
    cancel_id = cancellation_workflow_id(h.tenant, order_id)
    request_id = status.approval.request_id
    shown = await h.status_when(
        cancel_id, lambda s: s.detail.get("exception_request_id") == request_id
    )
    assert shown.state == "exception" and shown.detail["exception_workflow_id"] == child_id
    return child_id


async def _decide(
    h: Harness, approvers: Approvers, child_id: str, choice: str | None, approve: bool = True
) -> None:
    status = await flow_status(h.client, child_id)
    assert status.approval is not None
    decision = await approvers.decision(
        h.client,
        child_id,
        "omar",
        approve,
        request_id=status.approval.request_id,
        choice=choice,
        reason=None if approve else "not worth it",
    )
    assert (await decide(h.client, child_id, decision)).status == (
        "approved" if approve else "denied"
    )


async def _shopify_cancelled(h: Harness, order_id: str) -> bool:
    order = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    return order.cancelled_at is not None


async def _outbox(h: Harness) -> list[dict[str, Any]]:
    return list(await h.sandbox.control.outbox())


async def test_in_production_customer_told_it_ships(
    harness: Harness, database: Database, approvers: Approvers
) -> None:
    h = harness
    order_id, pi, fulfil, pf_id = await _making(h)
    async with delivering_webhooks(h, database):
        cancel = await h.request_cancellation(order_id, pi)
        child_id = await _escalation(h, order_id)
        # Nothing moved while the approver decides; ops got the approval notice only.
        assert await h.refunded(pi) == 0 and not await _shopify_cancelled(h, order_id)
        assert OPS_TEMPLATE not in {m["request"]["template_id"] for m in await _outbox(h)}
        await _decide(h, approvers, child_id, "contact_customer")
        result: OrderCancellationResult = await asyncio.wait_for(cancel.result(), timeout=60)
        exc = await exception_result(h, child_id)
        # OrderFulfill was left alone: Printful ships and the order completes.
        tracking = await ship_printful(h.sandbox.control, pf_id)
        done: OrderFulfillResult = await asyncio.wait_for(fulfil.result(), timeout=60)
    assert exc.state == "contacted" and exc.choice == "contact_customer" and exc.email_message_id
    assert exc.diagnosis is not None and exc.diagnosis.cause == "cancel_in_production"
    assert result.state == "exception" and result.exception is not None
    assert result.exception.kind == "printful_in_production"
    assert result.exception_workflow_id == child_id and result.exception_outcome == "contacted"
    assert result.reason is not None and "told it ships" in result.reason
    assert not result.shopify_cancelled and result.stripe_refund_id is None
    assert done.state == "completed" and done.tracking_number == tracking
    # Provider truth: nothing refunded or cancelled; the customer got one email, from WF06.
    assert await h.refunded(pi) == 0
    assert not await _shopify_cancelled(h, order_id)
    assert (await printful_order(h, pf_id))["status"] != "canceled"
    mails = [m for m in await _outbox(h) if m["recipients"] == ["customer@example.com"]]
    problem = [m for m in mails if m["request"]["template_id"] == PROBLEM_TEMPLATE]
    assert len(problem) == 1 and CANCELLED_TEMPLATE not in {
        m["request"]["template_id"] for m in mails
    }
    data = problem[0]["request"]["personalizations"][0]["dynamic_template_data"]
    assert "already being made" in data["subject"] and data["problem"] == "cancel_in_production"
    cancel_id = cancellation_workflow_id(h.tenant, order_id)
    assert [r.tool for r in await h.receipts(cancel_id)] == []  # it changed nothing
    [outcome] = await trace_decisions(h, cancel_id, "exception_outcome")
    assert outcome["state"] == "contacted"
    await maybe_record(h.client, child_id, "fulfillment_exception_cancel_in_production")


async def test_in_production_refunded_anyway(harness: Harness, approvers: Approvers) -> None:
    h = harness
    order_id, pi, fulfil, pf_id = await _making(h)
    cancel = await h.request_cancellation(order_id, pi)
    child_id = await _escalation(h, order_id)
    await _decide(h, approvers, child_id, "cancel_and_refund")
    result: OrderCancellationResult = await asyncio.wait_for(cancel.result(), timeout=60)
    exc = await exception_result(h, child_id)
    stopped: OrderFulfillResult = await asyncio.wait_for(fulfil.result(), timeout=60)
    assert exc.state == "cancelling" and exc.choice == "cancel_and_refund"
    assert exc.actions == ("refund left to the cancellation",)
    assert result.state == "cancelled" and result.exception_outcome == "cancelling"
    assert result.payment_action == "refund" and result.amount_minor == 2500
    assert result.stripe_refund_id and result.shopify_cancelled and result.fulfillment_stopped
    assert stopped.state == "cancelled"
    # Provider truth: refunded, Shopify cancelled, the Printful order left to ship.
    assert await h.refunded(pi) == 2500
    assert await _shopify_cancelled(h, order_id)
    assert (await printful_order(h, pf_id))["status"] == "inprocess"
    cancel_id = cancellation_workflow_id(h.tenant, order_id)
    assert [r.tool for r in await h.receipts(cancel_id)] == [
        "stripe.create_refund",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    [mail] = [m for m in await _outbox(h) if m["request"]["template_id"] == CANCELLED_TEMPLATE]
    assert mail["request"]["personalizations"][0]["dynamic_template_data"]["still_ships"] == (
        "true"
    )
    assert await trace_decisions(h, cancel_id, "printful_ships_anyway")
    await maybe_record(h.client, cancel_id, "order_cancellation_in_production_refunded")


async def test_in_production_denied_fails_closed(harness: Harness, approvers: Approvers) -> None:
    h = harness
    order_id, pi, fulfil, pf_id = await _making(h)
    cancel = await h.request_cancellation(order_id, pi)
    child_id = await _escalation(h, order_id)
    await _decide(h, approvers, child_id, None, approve=False)
    result: OrderCancellationResult = await asyncio.wait_for(cancel.result(), timeout=60)
    exc = await exception_result(h, child_id)
    assert exc.state == "unresolved" and exc.choice is None
    assert result.state == "exception" and result.exception_outcome == "unresolved"
    assert await h.refunded(pi) == 0 and not await _shopify_cancelled(h, order_id)
    assert (await printful_order(h, pf_id))["status"] == "inprocess"
    # The exception flow told ops (once); the customer was not emailed.
    mails = await _outbox(h)
    assert [m["recipients"] for m in mails if m["request"]["template_id"] == OPS_TEMPLATE] == [
        ["ops@autobiz.test"]
    ]
    assert not [m for m in mails if m["recipients"] == ["customer@example.com"]]
    status = await flow_status(h.client, fulfil.id)
    assert status.state == "in_production"  # OrderFulfill still waits for the shipment
    await fulfil.cancel()
