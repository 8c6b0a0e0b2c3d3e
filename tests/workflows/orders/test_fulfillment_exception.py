"""WF06 FulfillmentException end to end: Printful puts an order on hold or fails it, its
signed webhook goes through a real ingress to the order's OrderFulfill, which starts the
exception flow; the outcome is judged by the sandbox's providers and Temporal."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from autobiz.db.database import Database
from autobiz.demo.exception_cases import CORRECTED, ORDER_UPDATE
from kernel.call import PERSIST_TRACE_ACTIVITY
from kernel.config import BusinessConfig
from starters.flows import decide, flow_status
from tests.ingress.test_end_to_end import delivering_webhooks
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.support.sandbox import Sandbox
from tests.workflows.support import (
    Harness,
    HeldActivity,
    connect_to,
    eventually,
    harness_fixture,
    running_harness,
    ship_printful,
    tenant_config,
)
from workflows.ids import FULFILLMENT_EXCEPTION, cancellation_workflow_id
from workflows.orders.models import (
    FulfillmentExceptionResult,
    OrderCancellationResult,
    OrderFulfillResult,
)

pytestmark = pytest.mark.integration


async def correct_address_in_shopify(h: Harness, order_id: str) -> None:
    data = await h.clients.shopify.execute(
        "OrderUpdate",
        ORDER_UPDATE,
        {"input": {"id": f"gid://shopify/Order/{order_id}", "shippingAddress": CORRECTED}},
    )
    assert data["orderUpdate"]["userErrors"] == []


async def in_production(h: Harness, workflow_id: str) -> int:
    status = await h.status_when(workflow_id, lambda s: s.state == "in_production")
    return int(status.detail["printful_order_id"])


async def paid_in_production(
    h: Harness,
) -> tuple[str, WorkflowHandle[Any, OrderFulfillResult], int]:
    """A paid $19 order OrderFulfill sent to Printful: (order id, its handle, Printful id)."""
    order_id = await h.seed_order("19.00", financial_status="paid")
    handle = await h.start_order(order_id)
    return order_id, handle, await in_production(h, handle.id)


async def authorized_in_production(
    h: Harness,
) -> tuple[str, str, WorkflowHandle[Any, OrderFulfillResult], int]:
    """A $25 order, authorised, that OrderFulfill captured and sent to Printful: (order
    id, PaymentIntent, its handle, Printful id)."""
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    return order_id, pi, handle, await in_production(h, handle.id)


async def ships_and_completes(
    h: Harness, handle: WorkflowHandle[Any, OrderFulfillResult], pf_id: int
) -> tuple[OrderFulfillResult, str]:
    """Once OrderFulfill is back in production, Printful ships: (its result, tracking)."""
    await h.status_when(handle.id, lambda s: s.state == "in_production")
    tracking = await ship_printful(h.sandbox.control, pf_id)
    return await asyncio.wait_for(handle.result(), timeout=60), tracking


async def exception_of(h: Harness, workflow_id: str, state: str | None = None) -> dict[str, Any]:
    """OrderFulfill's ``exception`` detail once it shows one (in ``state``, if given)."""
    status = await h.status_when(
        workflow_id,
        lambda s: (
            "exception" in s.detail
            and (state is None or s.detail["exception"].get("state") == state)
        ),
        within=60,
    )
    shown: dict[str, Any] = status.detail["exception"]
    return shown


async def exception_result(h: Harness, child_id: str) -> FulfillmentExceptionResult:
    handle = h.client.get_workflow_handle(child_id, result_type=FulfillmentExceptionResult)
    return await asyncio.wait_for(handle.result(), timeout=60)


async def printful_order(h: Harness, pf_id: int) -> dict[str, Any]:
    return next(o for o in await h.sandbox.control.printful_orders() if o["id"] == pf_id)


async def trace_decisions(h: Harness, workflow_id: str, kind: str) -> list[dict[str, Any]]:
    """The details of the run's persisted trace decisions of one kind."""
    async with h.db.tenant(h.tenant) as s:
        rows = await s.fetch_all(
            "SELECT detail FROM traces WHERE tenant_id = %s AND workflow_id = %s "
            "AND kind = 'decision' AND outcome = %s ORDER BY seq",
            (h.tenant, workflow_id, kind),
        )
    return [dict(r["detail"]) for r in rows]


async def choose(h: Harness, approvers: Approvers, child_id: str, choice: str) -> None:
    status = await h.status_when(
        child_id, lambda s: s.approval is not None and s.approval.status == "pending", within=60
    )
    assert status.approval is not None
    assert status.approval.options == ("fix", "cancel_and_refund", "contact_customer")
    decision = await approvers.decision(
        h.client, child_id, "omar", True, request_id=status.approval.request_id, choice=choice
    )
    result = await decide(h.client, child_id, decision)
    assert result.status == "approved"


async def test_address_hold_fixed_from_shopify_then_ships(
    harness: Harness, database: Database
) -> None:
    h = harness
    order_id, _pi, handle, pf_id = await authorized_in_production(h)
    async with delivering_webhooks(h, database):
        await correct_address_in_shopify(h, order_id)
        await h.sandbox.control.advance_printful(
            pf_id, "hold", reason="Address verification failed: street not found"
        )
        shown = await exception_of(h, handle.id, "resolved")
        result = await exception_result(h, shown["workflow_id"])
        assert result.state == "resolved" and result.approval is None
        assert result.actions == ("address corrected from Shopify",)
        assert result.diagnosis is not None
        assert (result.diagnosis.cause, result.diagnosis.recommended) == (
            "address",
            "correct_address",
        )
        # Printful has the corrected address and released the hold.
        order = await printful_order(h, pf_id)
        assert order["status"] == "pending"
        assert (order["recipient"]["address1"], order["recipient"]["zip"]) == (
            "12 Analytical Way",
            "N1 9GX",
        )
        await h.status_when(handle.id, lambda s: s.state == "in_production")
        await h.sandbox.control.advance_printful(pf_id, "ship", tracking_number=f"1Z{pf_id}")
        done = await asyncio.wait_for(handle.result(), timeout=60)
    assert done.state == "completed" and done.tracking_number == f"1Z{pf_id}"
    tools = [r.tool for r in await h.receipts(result.workflow_id)]
    assert tools == ["printful.update_order"]
    # The diagnosis is in the trace, with its alternatives and why each was rejected.
    [entry] = await trace_decisions(h, result.workflow_id, "diagnosis")
    detail = entry["diagnosis"]
    assert detail["cause"] == "address" and detail["automatic"] is True
    assert {a["action"] for a in detail["alternatives"]} == {
        "retry",
        "escalate",
        "cancel_and_refund",
    }
    await maybe_record(h.client, result.workflow_id, "fulfillment_exception_address_fixed")
    await maybe_record(h.client, handle.id, "order_fulfill_exception_resolved")


async def test_transient_failure_is_resubmitted(harness: Harness, database: Database) -> None:
    h = harness
    _order_id, handle, pf_id = await paid_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(
            pf_id, "fail", reason="Temporary processing error, try again"
        )
        shown = await exception_of(h, handle.id, "resolved")
        result = await exception_result(h, shown["workflow_id"])
        assert result.state == "resolved" and result.retried
        assert result.diagnosis is not None and result.diagnosis.recommended == "retry"
        assert (await printful_order(h, pf_id))["status"] == "pending"
        done, tracking = await ships_and_completes(h, handle, pf_id)
    assert done.state == "completed" and done.tracking_number == tracking
    assert [r.tool for r in await h.receipts(result.workflow_id)] == ["printful.confirm_order"]


async def test_escalated_and_decided_cancel_and_refund(
    harness: Harness, database: Database, approvers: Approvers
) -> None:
    h = harness
    order_id, pi, handle, pf_id = await authorized_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(
            pf_id, "hold", reason="Print file too small (low DPI)"
        )
        shown = await exception_of(h, handle.id, "awaiting_decision")
        child_id = shown["workflow_id"]
        assert shown["cause"] == "printfile" and shown["recommended"] == "fix"
        assert shown["request_id"].startswith(child_id)
        # The approval carries the diagnosis, as the approver sees it.
        [row] = await h.pending_rows(child_id)
        details = row["details"]
        assert details["diagnosis"]["cause"] == "printfile"
        assert details["options"] == ["fix", "cancel_and_refund", "contact_customer"]
        await choose(h, approvers, child_id, "cancel_and_refund")
        result = await exception_result(h, child_id)
        assert result.state == "cancelling" and result.choice == "cancel_and_refund"
        cancel_id = cancellation_workflow_id(h.tenant, order_id)
        assert result.cancellation_workflow_id == cancel_id
        cancelled = await asyncio.wait_for(
            h.client.get_workflow_handle(cancel_id, result_type=OrderCancellationResult).result(),
            timeout=60,
        )
        fulfil: OrderFulfillResult = await asyncio.wait_for(handle.result(), timeout=60)
    assert cancelled.state == "cancelled" and cancelled.fulfillment_stopped
    assert cancelled.payment_action == "refund" and cancelled.amount_minor == 2500
    assert fulfil.state == "cancelled"
    # The sandbox's providers: refunded at Stripe, cancelled at Printful and Shopify.
    assert await h.refunded(pi) == 2500
    assert (await printful_order(h, pf_id))["status"] == "canceled"
    order = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    assert order.cancelled_at is not None
    await maybe_record(h.client, child_id, "fulfillment_exception_cancel_and_refund")


def _exception_trace(info: activity.Info) -> bool:
    """A FulfillmentException's trace write, held: its run ends well after the
    OrderCancellation it started has stopped OrderFulfill."""
    return (
        info.workflow_type == FULFILLMENT_EXCEPTION.type
        and info.activity_type == PERSIST_TRACE_ACTIVITY
    )


@pytest.fixture
async def slow_child_end(
    temporal_env: WorkflowEnvironment,
    sandbox: Sandbox,
    database: Database,
    tenant: str,
    task_queue: str,
) -> Any:
    ours = await connect_to(temporal_env)
    config = ours.config()
    config["interceptors"] = [HeldActivity(_exception_trace, 3)]
    async with running_harness(Client(**config), sandbox, database, tenant, task_queue) as h:
        yield h


async def test_cancel_and_refund_waits_for_the_exception_flow_to_end(
    slow_child_end: Harness, database: Database, approvers: Approvers
) -> None:
    """The child says ``cancelling`` before it starts OrderCancellation, so OrderFulfill,
    stopped by that cancellation, waits for the child to end instead of closing first
    and cancelling it (its parent-close policy)."""
    h = slow_child_end
    order_id, pi, handle, pf_id = await authorized_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "hold", reason="Print file too small")
        shown = await exception_of(h, handle.id, "awaiting_decision")
        child_id = shown["workflow_id"]
        await choose(h, approvers, child_id, "cancel_and_refund")
        result = await exception_result(h, child_id)
        fulfil: OrderFulfillResult = await asyncio.wait_for(handle.result(), timeout=60)
        cancel = h.client.get_workflow_handle(
            cancellation_workflow_id(h.tenant, order_id), result_type=OrderCancellationResult
        )
        cancelled = await asyncio.wait_for(cancel.result(), timeout=60)
    assert result.state == "cancelling" and result.choice == "cancel_and_refund"
    assert fulfil.state == "cancelled" and cancelled.fulfillment_stopped
    assert cancelled.payment_action == "refund" and await h.refunded(pi) == 2500
    # OrderFulfill closed after its child, and its status shows the child's outcome.
    child = await h.client.get_workflow_handle(child_id).describe()
    parent = await handle.describe()
    assert child.close_time is not None and parent.close_time is not None
    assert child.close_time <= parent.close_time
    exception = (await flow_status(h.client, handle.id)).detail["exception"]
    assert exception["state"] == "cancelling"
    await maybe_record(h.client, child_id, "fulfillment_exception_reports_cancelling")
    await maybe_record(h.client, handle.id, "order_fulfill_waits_for_ending_exception")


async def test_escalated_and_decided_contact_customer(
    harness: Harness, database: Database, approvers: Approvers
) -> None:
    """Held for the address, and Shopify has no better one: the customer is asked; the
    order stays on hold and OrderFulfill waits on, so Printful's release still ships it."""
    h = harness
    _order_id, handle, pf_id = await paid_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "hold", reason="Undeliverable address")
        shown = await exception_of(h, handle.id, "awaiting_decision")
        assert shown["recommended"] == "contact_customer"
        await choose(h, approvers, shown["workflow_id"], "contact_customer")
        result = await exception_result(h, shown["workflow_id"])
        assert result.state == "contacted" and result.email_message_id
        status = await h.status_when(handle.id, lambda s: s.state == "on_hold")
        assert status.detail["exception"]["state"] == "contacted"
        outbox = await h.sandbox.control.outbox()
        [mail] = [
            m for m in outbox if m["request"]["template_id"] == "d-autobiz-fulfillment-problem"
        ]
        assert mail["recipients"] == ["customer@example.com"]
        # The customer answered; Printful's staff release the order and it ships.
        await h.sandbox.control.advance_printful(pf_id, "release")
        tracking = await ship_printful(h.sandbox.control, pf_id)
        done = await asyncio.wait_for(handle.result(), timeout=60)
    assert done.state == "completed" and done.tracking_number == tracking


def exception_settings(tenant: str, **update: Any) -> BusinessConfig:
    """The test tenant's config, its ``fulfillment_exception`` settings updated."""
    config = tenant_config(tenant)
    settings = config.fulfillment_exception.model_copy(update=update)
    return config.model_copy(update={"fulfillment_exception": settings})


# A harness whose tenant gives an escalation three seconds.
quick_escalation = harness_fixture(
    "quick_escalation",
    lambda tenant: exception_settings(tenant, escalation_timeout=timedelta(seconds=3)),
)


async def test_an_escalation_nobody_decides_fails_closed(
    quick_escalation: Harness, database: Database
) -> None:
    h = quick_escalation
    _order_id, pi, handle, pf_id = await authorized_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "fail", reason="Failed to charge wallet")
        shown = await exception_of(h, handle.id, "unresolved")
        result = await exception_result(h, shown["workflow_id"])
    assert result.state == "unresolved" and result.approval is not None
    assert result.approval.status == "expired" and result.choice is None
    # Nothing financial happened: captured, not refunded; Printful's order as it was.
    assert await h.refunded(pi) == 0
    assert (await printful_order(h, pf_id))["status"] == "failed"
    assert not [
        r.tool for r in await h.receipts(result.workflow_id) if r.tool != "sendgrid.send_email"
    ]
    # Ops were told (the expiry notice and the alert).

    async def told() -> list[str] | None:
        templates = [m["request"]["template_id"] for m in await h.sandbox.control.outbox()]
        return templates if "d-autobiz-ops-alert" in templates else None

    templates = await eventually(told, what="the ops alert")
    assert "d-autobiz-approval-expired" in templates
    status = await flow_status(h.client, handle.id)
    assert status.state == "on_hold" and status.detail["exception"]["state"] == "unresolved"


async def test_a_cancellation_while_an_escalation_waits_withdraws_it(
    harness: Harness, database: Database
) -> None:
    """The customer cancels while ops have not decided: OrderCancellation stops
    OrderFulfill, whose exception child is cancelled with it (its request closed), and
    the cancellation refunds and cancels at Printful as usual."""
    h = harness
    order_id, pi, handle, pf_id = await authorized_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "fail", reason="Failed to charge wallet")
        shown = await exception_of(h, handle.id, "awaiting_decision")
        cancel = await h.request_cancellation(order_id, pi)
        cancelled = await asyncio.wait_for(cancel.result(), timeout=60)
        fulfil = await asyncio.wait_for(handle.result(), timeout=60)
        child = h.client.get_workflow_handle(shown["workflow_id"])

        async def closed() -> str | None:
            desc = await child.describe()
            return (
                None if desc.status is None or desc.status.name == "RUNNING" else desc.status.name
            )

        assert await eventually(closed, what="the exception flow closed") == "CANCELED"
    assert cancelled.state == "cancelled" and cancelled.fulfillment_stopped
    assert fulfil.state == "cancelled"
    assert await h.refunded(pi) == 2500
    assert (await printful_order(h, pf_id))["status"] == "canceled"
    rows = await h.hitl_rows(shown["workflow_id"])
    assert [r["status"] for r in rows] == ["denied"]  # closed by the cancel, nothing chosen


async def test_escalated_and_decided_fix_rereads_shopify(
    harness: Harness, database: Database, approvers: Approvers
) -> None:
    """Held for the address with no better one in Shopify: escalated. The merchant then
    corrects the address in Shopify and ops choose fix: the flow re-reads Shopify, sends
    the address to Printful, the hold is released and the order ships."""
    h = harness
    order_id, handle, pf_id = await paid_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "hold", reason="Invalid address")
        shown = await exception_of(h, handle.id, "awaiting_decision")
        await correct_address_in_shopify(h, order_id)
        await choose(h, approvers, shown["workflow_id"], "fix")
        result = await exception_result(h, shown["workflow_id"])
        assert result.state == "resolved" and result.choice == "fix"
        assert result.actions == ("address corrected from Shopify",)
        assert (await printful_order(h, pf_id))["recipient"]["address1"] == "12 Analytical Way"
        done, tracking = await ships_and_completes(h, handle, pf_id)
    assert done.state == "completed" and done.tracking_number == tracking


# A harness whose tenant re-submits a transient failure once per order.
one_retry = harness_fixture("one_retry", lambda tenant: exception_settings(tenant, max_retries=1))


async def test_retries_are_bounded_per_order(one_retry: Harness, database: Database) -> None:
    """The bound counts across the order's exceptions: the second transient failure of
    the same order is not re-submitted but escalated."""
    h = one_retry
    _order_id, handle, pf_id = await paid_in_production(h)
    reason = "Temporary processing error, try again"
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "fail", reason=reason)
        first = await exception_of(h, handle.id, "resolved")
        assert (await exception_result(h, first["workflow_id"])).retried
        await h.status_when(handle.id, lambda s: s.state == "in_production")
        await h.sandbox.control.advance_printful(pf_id, "fail", reason=reason)
        second = await h.status_when(
            handle.id,
            lambda s: (
                (s.detail.get("exception") or {}).get("workflow_id")
                not in (None, first["workflow_id"])
                and s.detail["exception"].get("state") == "awaiting_decision"
            ),
            within=60,
        )
    shown = second.detail["exception"]
    assert shown["recommended"] == "fix"
    child = await flow_status(h.client, shown["workflow_id"])
    assert any("1 of 1" in e for e in child.detail["diagnosis"]["evidence"])
    assert (await printful_order(h, pf_id))["status"] == "failed"  # not re-submitted


async def test_a_fixed_hold_waits_for_printful_to_release_it(
    harness: Harness, database: Database
) -> None:
    """The address is corrected, but Printful's staff release the hold later: the
    exception flow waits, and Printful's order_remove_hold (through the ingress to
    OrderFulfill, forwarded to the child) resolves it."""
    h = harness
    order_id, handle, pf_id = await paid_in_production(h)
    async with delivering_webhooks(h, database):
        await correct_address_in_shopify(h, order_id)
        # Printful releases this one by hand, not on the corrected recipient.
        await h.sandbox.control.advance_printful(
            pf_id, "hold", reason="Address needs a manual check", problem="other"
        )
        shown = await exception_of(h, handle.id)
        child_id = shown["workflow_id"]
        await h.status_when(child_id, lambda s: s.state == "awaiting_release", within=60)
        assert (await printful_order(h, pf_id))["recipient"]["address1"] == "12 Analytical Way"
        await h.sandbox.control.advance_printful(pf_id, "release")
        result = await exception_result(h, child_id)
        assert result.state == "resolved" and result.approval is None
        done, tracking = await ships_and_completes(h, handle, pf_id)
    assert done.state == "completed" and done.tracking_number == tracking
