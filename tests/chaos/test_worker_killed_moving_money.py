"""The worker SIGKILLed (by its pid file) inside each money-moving activity: the capture,
the refund, the void. The sandbox holds that one Stripe request (a latency fault on its
endpoint), so the kill lands while the call is at the provider and Temporal shows the
first attempt started. A new worker retries it when the attempt's start-to-close timeout
runs out, with the same idempotency key: the money moves once, every flow ends as
expected, one receipt per side effect."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from temporalio.client import Client

from autobiz.demo.business_day import Case
from autobiz.ledger.receipts import ReceiptStore
from autobiz.soak.chaos import kill, start
from tests.chaos.conftest import ChaosRig

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

HOLD_MS = 8000  # long enough for the kill to land while Stripe holds the request


@dataclass(frozen=True)
class MoneyCall:
    tool: str  # the activity type Temporal shows
    path: str  # the sandbox's fault glob (POST)


CAPTURE = MoneyCall("stripe.capture_payment@1", "/stripe/v1/payment_intents/*/capture")
REFUND = MoneyCall("stripe.create_refund@1", "/stripe/v1/refunds")
VOID = MoneyCall("stripe.cancel_payment@1", "/stripe/v1/payment_intents/*/cancel")


async def _kill_inside(rig: ChaosRig, call: MoneyCall, case: Case) -> str:
    """Kill the worker while ``call`` is at Stripe for ``case``'s flow, check the kill
    landed inside it, start a new worker: the workflow id."""
    workflow_id = await rig.in_flight(lambda: case.workflow_id, call.tool, call.path)
    pid = await asyncio.to_thread(kill, rig.stack, "worker")
    # Temporal still holds the first attempt as started: nobody finished it.
    assert await rig.started_attempt(workflow_id, call.tool) == 1, pid
    await asyncio.to_thread(start, rig.stack, "worker")
    return workflow_id


async def _retried_once(client: Client, workflow_id: str, tool: str) -> list[int]:
    """The attempt numbers of ``tool``'s recorded starts in the workflow's history."""
    events = list((await client.get_workflow_handle(workflow_id).fetch_history()).events)
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == tool
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


async def _receipts(rig: ChaosRig, case: Case, tool: str) -> int:
    receipts = await ReceiptStore(rig.db).for_workflow(case.tenant, str(case.workflow_id))
    return sum(1 for r in receipts if r.tool == tool.split("@", 1)[0])


async def test_killed_during_the_capture(rig: ChaosRig) -> None:
    order = rig.case("worker killed during the capture", "OrderFulfill", "completed")
    await rig.day.control.fault("latency", CAPTURE.path, method="POST", latency_ms=HOLD_MS)
    flow = asyncio.create_task(rig.day._fulfilled_order(order, "31.00"))
    workflow_id = await _kill_inside(rig, CAPTURE, order)
    await flow
    assert await _retried_once(rig.client, workflow_id, CAPTURE.tool) == [2]
    pi = await rig.day.stripe.retrieve_payment_intent(str(order.facts["payment_intent"]))
    assert pi.status == "succeeded" and pi.amount_received == 3100
    assert await _receipts(rig, order, CAPTURE.tool) == 1
    await rig.judge([order])


async def test_killed_during_the_refund(rig: ChaosRig) -> None:
    order = rig.case("an order to refund", "OrderFulfill", "completed")
    refund = rig.case("worker killed during the refund", "Refund", "refunded")
    await rig.day.control.fault("latency", REFUND.path, method="POST", latency_ms=HOLD_MS)
    flow = asyncio.create_task(
        rig.day._refund_after(rig.day._fulfilled_order(order, "26.00"), "10.00", refund)
    )
    workflow_id = await _kill_inside(rig, REFUND, refund)
    await flow
    assert await _retried_once(rig.client, workflow_id, REFUND.tool) == [2]
    # The demo's driver checked Stripe: exactly 10.00 refunded on the PaymentIntent.
    assert refund.facts["stripe_refunded"] == 1000
    page = await rig.day.stripe.list_refunds(payment_intent_id=str(order.facts["payment_intent"]))
    assert len(page.refunds) == 1
    assert await _receipts(rig, refund, REFUND.tool) == 1
    await rig.judge([order, refund])


async def test_killed_during_the_void(rig: ChaosRig) -> None:
    held = rig.case("an order held for review", "OrderFulfill", "cancelled")
    cancel = rig.case("worker killed during the void", "OrderCancellation", "cancelled")
    await rig.day.control.fault("latency", VOID.path, method="POST", latency_ms=HOLD_MS)
    flow = asyncio.create_task(rig.day._cancellation(held, cancel))
    workflow_id = await _kill_inside(rig, VOID, cancel)
    await flow
    assert await _retried_once(rig.client, workflow_id, VOID.tool) == [2]
    # The demo's driver checked Stripe: the authorisation voided, nothing received.
    assert cancel.facts["payment_status"] == "canceled"
    assert await _receipts(rig, cancel, VOID.tool) == 1
    await rig.judge([held, cancel])
