"""Transient is not fatal (issue 10): a provider "not found yet", 5xx, 429 or timeout is
retried as activity attempts (bounded, in the history); only a decisive answer fails an
order, and a failed or terminated order flow runs again under the same business key,
replaying — not redoing — what the earlier run did."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError

from autobiz.cli.flow_runtime import failure_of
from kernel import tools
from kernel.codes import ErrorCode
from tests.workflows.support import Harness, ship_printful
from workflows.ids import printful_external_id
from workflows.orders.models import OrderFulfillResult, ShipmentNotice

pytestmark = pytest.mark.integration

GRAPHQL = "/shopify/*graphql.json"
# The harness's config shortens the contracts' waits (1, 2, 4, 8 s ...) 20x
# (``QUICK_RETRIES``); the attempts stay as they are.


async def _ship(h: Harness, handle: WorkflowHandle[Any, OrderFulfillResult]) -> OrderFulfillResult:
    status = await h.status_when(handle.id, lambda s: s.state == "in_production", within=90)
    pf_id = int(status.detail["printful_order_id"])
    tracking = await ship_printful(h.sandbox.control, pf_id, carrier="UPS")
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="UPS", tracking_number=tracking)
    )
    return await handle.result()


async def attempts(
    handle: WorkflowHandle[Any, Any], activity_type: str
) -> list[tuple[int, str | None]]:
    """Each run of ``activity_type`` in the history: the attempt that finished it and the
    failure type of the attempt before (None: none, or the server cut a failure over its
    size limit down to its causes)."""
    scheduled: dict[int, str] = {}
    found: list[tuple[int, str | None]] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == activity_type:
                last = started.last_failure
                kind = last.application_failure_info.type or None
                found.append((started.attempt, kind))
    return found


async def _one_of_each(h: Harness, handle_id: str, pi: str, order_id: str, amount: int) -> None:
    """Provider truth and receipts: one capture, one Printful order."""
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.amount_received == amount
    orders = [
        o
        for o in await h.sandbox.control.printful_orders()
        if o["external_id"] == printful_external_id(h.tenant, order_id)
    ]
    assert len(orders) == 1
    tools = [r.tool for r in await h.receipts(handle_id)]
    assert tools.count("stripe.capture_payment") == 1
    assert tools.count("printful.create_order") == 1


async def test_shopify_404_then_success_completes_the_order(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    # Shopify's read replica does not know the order yet: one 404 on GetOrder only.
    await h.sandbox.control.fault("error", GRAPHQL, status=404, operation="GetOrder")
    handle = await h.start_order(order_id, pi)
    result = await _ship(h, handle)
    assert result.state == "completed" and result.captured_minor == 2500
    await _one_of_each(h, handle.id, pi, order_id, 2500)
    # The retry is the activity's second attempt, after a "not found yet".
    assert await attempts(handle, tools.shopify.GET_ORDER.ref) == [
        (2, ErrorCode.PROVIDER_NOT_FOUND_YET)
    ]


async def test_not_found_past_the_grace_is_decisive(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("15.00")
    grace = tools.shopify.GET_ORDER.not_found_grace
    await h.sandbox.control.fault(
        "error", GRAPHQL, status=404, operation="GetOrder", count=grace + 1
    )
    handle = await h.start_order(order_id, pi)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert failure_of(failed.value)[0] == "PROVIDER_NOT_FOUND"
    # Bounded: the grace's attempts, then the decisive one; nothing was captured.
    assert await attempts(handle, tools.shopify.GET_ORDER.ref) == [
        (grace + 1, ErrorCode.PROVIDER_NOT_FOUND_YET)
    ]
    assert (await h.clients.stripe.retrieve_payment_intent(pi)).amount_received == 0
    assert await h.receipts(handle.id) == []


async def test_a_failed_order_reruns_once(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("30.00")
    first = await h.start_order(order_id, pi)
    await h.status_when(first.id, lambda s: s.state == "in_production", within=90)
    await first.terminate("operator: worker host lost")  # captured, in production, no tracking
    with pytest.raises(WorkflowFailureError):
        await first.result()

    # The same business key starts its next run (the terminated one is not attached to)...
    second = await h.start_order(order_id, pi)
    assert second.id == first.id and second.result_run_id != first.result_run_id
    result = await _ship(h, second)
    assert result.state == "completed" and result.captured_minor == 3000
    # ...which replayed the capture and the Printful order instead of doing them again.
    await _one_of_each(h, second.id, pi, order_id, 3000)
    # A completed order never runs again.
    with pytest.raises(WorkflowAlreadyStartedError):
        await h.start_order(order_id, pi)


async def test_capture_through_5xx_429_and_a_timeout_captures_once(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("40.00")
    capture = "/stripe/v1/payment_intents/*/capture"
    control = h.sandbox.control
    await control.fault("error", capture, method="POST", status=502)
    await control.fault("rate_limit", capture, method="POST", retry_after=0.1)
    await control.fault("timeout", capture, method="POST", hang_seconds=30)
    handle = await h.start_order(order_id, pi)
    result = await _ship(h, handle)
    assert result.state == "completed" and result.captured_minor == 4000
    await _one_of_each(h, handle.id, pi, order_id, 4000)
    # 502, 429, timeout: three retries of one activity, the fourth attempt captured.
    assert [attempt for attempt, _ in await attempts(handle, "stripe.capture_payment@1")] == [4]


async def test_a_lookup_by_external_id_takes_not_found_at_once(harness: Harness) -> None:
    """The cancellation asks Printful "is there an order for this one?": no grace."""
    h = harness
    order_id, pi = await h.authorized_order("20.00")
    handle = await h.request_cancellation(order_id, pi)
    result = await handle.result()
    assert result.state == "cancelled" and result.printful_order_id is None
    lookups = await attempts(handle, "printful.get_order@1")
    assert lookups and all(found == (1, None) for found in lookups)
