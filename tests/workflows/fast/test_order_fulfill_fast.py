"""OrderFulfill's branches with stand-in activities (see ``fakes``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle

from kernel.tools.shopify import LineItem, ShippingAddress
from starters.flows import start_order
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import refusal, shop_order
from workflows.orders.models import ShipmentNotice

GET, RISK = "shopify.get_order@1", "risk.assess@1"
CAPTURE, REFUND = "stripe.capture_payment@1", "stripe.create_refund@1"
PF_CREATE, PF_CONFIRM = "printful.create_order@1", "printful.confirm_order@1"
PF_CANCEL = "printful.cancel_order@1"
FULFILL, EMAIL = "shopify.create_fulfillment@1", "sendgrid.send_email@1"


def _order(fast: Fast, order_id: str, total_minor: int = 2500) -> str:
    fast.fakes.orders[order_id] = shop_order(
        order_id,
        total_minor=total_minor,
        financial_status="AUTHORIZED",
        shipping_address=ShippingAddress(
            name="Ada", address1="1 Way", city="London", zip="N1", country_code="GB"
        ),
        line_items=[LineItem(sku="PF-4012", quantity=1, unit_price_minor=total_minor)],
    )
    return order_id


async def _start(fast: Fast, order_id: str):
    return await start_order(
        fast.client,
        fast.config,
        order_id=order_id,
        task_queue=fast.task_queue,
        timing=TIMING,
        shipment_wait=timedelta(seconds=60),
        shipment_polls=0,
    )


async def _fails(fast: Fast, order_id: str) -> None:
    """Start the flow for ``order_id`` and see it fail."""
    handle = await _start(fast, order_id)
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def _ship(fast: Fast, handle: WorkflowHandle[Any, Any]) -> None:
    """Printful's shipment, as the ingress signals it once the order is confirmed."""
    await fast.fakes.called(PF_CONFIRM)
    await handle.signal("printful_shipment", ShipmentNotice(carrier="DHL", tracking_number="TRK1"))


async def test_happy_path_captures_prints_ships_and_emails(fast: Fast) -> None:
    order_id = _order(fast, "1001")
    handle = await _start(fast, order_id)
    await _ship(fast, handle)
    result = await handle.result()
    assert result.state == "completed"
    assert result.captured_minor == 2500 and result.tracking_number == "TRK1"
    assert fast.fakes.names() == [GET, RISK, CAPTURE, PF_CREATE, PF_CONFIRM, FULFILL, EMAIL]
    (capture,) = fast.fakes.inputs(CAPTURE)
    assert (capture.payment_intent_id, capture.amount_minor) == ("pi_1001", 2500)
    (fulfil,) = fast.fakes.inputs(FULFILL)
    assert (fulfil.order_id, fulfil.tracking_number) == (order_id, "TRK1")
    assert fast.fakes.opened == []  # low risk, below the threshold: no approval
    assert fast.fakes.states[order_id][-1] == "completed"
    assert "in_production" in fast.fakes.states[order_id]


async def test_high_risk_waits_for_approval_and_a_denial_captures_nothing(fast: Fast) -> None:
    order_id = _order(fast, "1002")
    fast.fakes.risk = "high"
    handle = await _start(fast, order_id)
    request = await fast.fakes.opened_request()
    assert request.action == "capture_payment" and request.amount_minor == 2500
    assert fast.fakes.names() == [GET, RISK]  # waiting: nothing captured yet
    denied = await fast.decide(handle.id, "omar", approve=False)
    assert denied.status == "denied"
    result = await handle.result()
    assert result.state == "rejected" and result.captured_minor == 0
    assert fast.fakes.names() == [GET, RISK]
    assert [c.status for c in fast.fakes.closed] == ["denied"]
    assert fast.fakes.states[order_id][-1] == "rejected"


async def test_high_risk_approved_captures(fast: Fast) -> None:
    order_id = _order(fast, "1003")
    fast.fakes.risk = "high"
    handle = await _start(fast, order_id)
    assert (await fast.decide(handle.id, "omar", approve=True)).status == "approved"
    await _ship(fast, handle)
    result = await handle.result()
    assert result.state == "completed"
    assert fast.fakes.names()[:3] == [GET, RISK, CAPTURE]


async def test_capture_failure_compensates_nothing(fast: Fast) -> None:
    order_id = _order(fast, "1004")
    fast.fakes.fail[CAPTURE] = refusal("PAYMENT_DECLINED", "card declined")
    await _fails(fast, order_id)
    assert fast.fakes.names() == [GET, RISK, CAPTURE]  # no refund, no Printful
    assert fast.fakes.states[order_id][-1] == "failed"


async def test_printful_failure_after_capture_refunds_the_capture(fast: Fast) -> None:
    order_id = _order(fast, "1005")
    fast.fakes.fail[PF_CREATE] = refusal("PROVIDER_REJECTED", "bad recipient")
    await _fails(fast, order_id)
    assert fast.fakes.names() == [GET, RISK, CAPTURE, PF_CREATE, REFUND]  # no draft to cancel
    (refund,) = fast.fakes.inputs(REFUND)
    assert (refund.payment_intent_id, refund.amount_minor) == ("pi_1005", 2500)
    assert refund.refund_request_id == f"undo-{order_id}"
    assert fast.fakes.states[order_id][-1] == "failed"


async def test_printful_confirm_failure_cancels_the_draft_and_refunds(fast: Fast) -> None:
    order_id = _order(fast, "1006")
    fast.fakes.fail[PF_CONFIRM] = refusal("PROVIDER_REJECTED", "out of stock")
    await _fails(fast, order_id)
    # Undone in reverse: the draft first, then the capture.
    assert fast.fakes.names() == [GET, RISK, CAPTURE, PF_CREATE, PF_CONFIRM, PF_CANCEL, REFUND]


async def test_unknown_order_fails_before_anything(fast: Fast) -> None:
    await _fails(fast, "9999")
    assert fast.fakes.names() == [GET]
