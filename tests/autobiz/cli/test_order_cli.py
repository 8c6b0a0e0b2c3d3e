"""`autobiz order start|status` and `autobiz refund request` without a PaymentIntent,
driven as a user runs them (subprocess) against a real worker, Temporal and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.autobiz.cli.support import Cli
from tests.workflows.support import Harness, ship_printful
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.e2e


async def test_order_start_attach_status_closed_and_refund_from_receipt(
    harness: Harness, cli: Cli
) -> None:
    h = harness
    order_id = await h.seed_order("25.00")
    pi = await h.authorize(2500, order_id)
    wid = f"order:{h.tenant}:{order_id}"

    first = (await cli("order", "start", order_id, "--payment-intent", pi, "--json")).json()
    assert first["workflow_id"] == wid and first["tenant_id"] == h.tenant
    assert first["started"] is True and first["task_queue"] == h.task_queue
    # A second start attaches to the running flow (same run), in both output forms.
    again = (await cli("order", "start", order_id, "--json")).json()
    assert again["attached"] is True and again["run_id"] == first["run_id"]
    human = await cli("order", "start", order_id, "--payment-intent", pi)
    assert "attached to the running order flow" in human.stdout and wid in human.stdout

    await h.status_when(wid, lambda s: s.state == "in_production")
    live = (await cli("order", "status", order_id, "--json")).json()
    assert live["status"] == "RUNNING" and live["flow_state"] == "in_production"
    assert live["live"]["state"] == "in_production" and live["result"] is None
    assert live["live"]["detail"]["captured_minor"] == 2500
    human = await cli("order", "status", order_id)
    for text in ("RUNNING", "in_production", "25.00 USD", wid):
        assert text in human.stdout

    # Shipped: the flow completes, and status reads the closed run and its result.
    pf_id = int(live["live"]["detail"]["printful_order_id"])
    tracking = await ship_printful(h.sandbox.control, pf_id)
    handle = h.client.get_workflow_handle(wid)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    await handle.result()
    closed = (await cli("order", "status", order_id, "--json")).json()
    assert closed["status"] == "COMPLETED" and closed["flow_state"] == "completed"
    assert closed["live"] is None and closed["closed_at"]
    assert closed["result"]["state"] == "completed"
    assert closed["result"]["tracking_number"] == tracking
    human = await cli("order", "status", order_id)
    assert "COMPLETED" in human.stdout and tracking in human.stdout

    # The business key never runs twice.
    refused = await cli("order", "start", order_id, check=False)
    assert refused.refused("ORDER_FLOW_CLOSED"), refused.stderr
    assert "COMPLETED" in refused.stderr

    # No --payment-intent: the refund takes the PaymentIntent the order's flow captured.
    refund = (await cli("refund", "request", order_id, "--amount", "5", "--wait", "--json")).json()
    assert refund["payment_intent_id"] == pi and refund["amount_minor"] == 500
    assert refund["currency"] == "USD" and refund["result"]["state"] == "refunded"


async def test_unknown_order_and_uncaptured_refund_say_what_to_do(
    harness: Harness, cli: Cli
) -> None:
    missing = await cli("order", "status", "424242", check=False)
    assert missing.refused("FLOW_NOT_FOUND") and "autobiz order start 424242" in missing.stderr
    # Nothing captured for this order: the CLI does not guess a PaymentIntent.
    unknown = await cli("refund", "request", "424242", "--amount", "5.00", check=False)
    assert unknown.refused("PAYMENT_UNKNOWN") and unknown.code == 3
    assert "autobiz order status 424242" in unknown.stderr
    bad = await cli("refund", "request", "424242", "--amount", "5.001", check=False)
    assert bad.refused("AMOUNT_INVALID")
    other = await cli("order", "start", "1", "--tenant", "no-such-shop", check=False)
    assert other.refused("TENANT_UNKNOWN") and harness.tenant in other.stderr


async def test_wait_reports_a_failed_flow_with_its_cause(harness: Harness, cli: Cli) -> None:
    h = harness
    order_id = await h.seed_order("25.00")
    failed = await cli(
        "order", "start", order_id, "--payment-intent", "pi_missing", "--wait", check=False
    )
    assert failed.refused("FLOW_FAILED"), failed.stderr
    assert f"order:{h.tenant}:{order_id}" in failed.stderr
    status = (await cli("order", "status", order_id, "--json")).json()
    assert status["status"] == "FAILED" and status["flow_state"] == "failed"
    assert status["failure"]["type"] and status["result"] is None
