"""OrderFulfill under provider faults: retried with the same keys, done exactly once."""

from __future__ import annotations

import pytest

from tests.workflows.support import Harness
from workflows.ids import printful_external_id
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.integration


async def test_5xx_and_commit_then_drop_do_nothing_twice(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("30.00")
    control = h.sandbox.control
    await control.fault("error", "/stripe/v1/payment_intents/*/capture", method="POST", status=503)
    await control.fault(
        "commit_then_drop",
        "/stripe/v1/payment_intents/*/capture",
        method="POST",
        hang_seconds=0.2,
    )
    await control.fault("commit_then_drop", "/printful/v2/orders", method="POST", hang_seconds=0.2)
    handle = await h.start_order(order_id, pi)
    status = await h.status_when(handle.id, lambda s: s.state == "in_production", within=90)
    pf_id = int(status.detail["printful_order_id"])
    tracking = f"1Z{pf_id}"  # as the shipment_sent webhook carries it
    await control.advance_printful(pf_id, "ship", carrier="UPS", tracking_number=tracking)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="UPS", tracking_number=tracking)
    )
    result = await handle.result()
    assert result.state == "completed" and result.captured_minor == 3000
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.amount_received == 3000
    orders = [
        o
        for o in await control.printful_orders()
        if o["external_id"] == printful_external_id(h.tenant, order_id)
    ]
    assert len(orders) == 1
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts].count("stripe.capture_payment") == 1
    assert [r.tool for r in receipts].count("printful.create_order") == 1


async def test_uncapturable_payment_fails_fast(harness: Harness) -> None:
    """A payment that cannot be captured fails the flow fast; nothing downstream runs."""
    h = harness
    order_id, pi = await h.authorized_order("12.00")
    await h.clients.stripe.cancel_payment_intent(pi, idempotency_key=f"cancel-{pi}")
    handle = await h.start_order(order_id, pi)
    from temporalio.client import WorkflowFailureError

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await h.status_when(handle.id, lambda s: s.state == "failed")
    assert status.error is not None and "PROVIDER_STATE_CONFLICT" in status.error
    assert await h.sandbox.control.printful_orders() == []
    assert await h.receipts(handle.id) == []
