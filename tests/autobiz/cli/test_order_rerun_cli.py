"""`autobiz order start` on an order whose flow failed: it says so and starts the next
run; on a completed one it refuses (issue 10, "transient is not fatal")."""

from __future__ import annotations

import pytest

from kernel import tools
from tests.autobiz.cli.support import Cli
from tests.workflows.support import Harness, ship_printful
from workflows.orders.models import OrderFulfillResult, ShipmentNotice

pytestmark = pytest.mark.e2e


async def test_a_failed_order_reruns_once(harness: Harness, cli: Cli) -> None:
    h = harness
    # The tenant's retry waits shortened 20x (the attempts stay as the contracts say).
    config = cli.config_dir / f"{h.tenant}.yaml"
    config.write_text(config.read_text() + "retries:\n  interval_scale: 0.05\n")
    order_id = await h.seed_order("25.00")
    pi = await h.authorize(2500, order_id)
    wid = f"order:{h.tenant}:{order_id}"
    # Shopify keeps saying "no such order" past the grace: run 1 fails decisively.
    await h.sandbox.control.fault(
        "error",
        "/shopify/*graphql.json",
        status=404,
        operation="GetOrder",
        count=tools.shopify.GET_ORDER.not_found_grace + 1,
    )
    failed = await cli("order", "start", order_id, "--payment-intent", pi, "--wait", check=False)
    assert failed.refused("FLOW_FAILED") and "PROVIDER_NOT_FOUND" in failed.stderr
    status = await cli("order", "status", order_id)
    assert "FAILED" in status.stdout and f"autobiz order start {order_id}" in status.stdout

    # The next start is run 2 of the same key, and says what happened to run 1.
    second = (await cli("order", "start", order_id, "--payment-intent", pi, "--json")).json()
    assert second["workflow_id"] == wid and second["started"] is True
    assert second["run_number"] == 2
    previous = second["previous_run"]
    assert previous["status"] == "FAILED" and previous["run_id"] != second["run_id"]
    assert previous["failure"]["type"] == "PROVIDER_NOT_FOUND"

    # While it runs, a start attaches to it (no run 3 beside it).
    human = await cli("order", "start", order_id)
    assert "attached to the running order flow" in human.stdout

    live = await h.status_when(wid, lambda s: s.state == "in_production", within=90)
    pf_id = int(live.detail["printful_order_id"])
    tracking = await ship_printful(h.sandbox.control, pf_id)
    handle = h.client.get_workflow_handle(wid, result_type=OrderFulfillResult)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    assert (await handle.result()).state == "completed"
    assert (await h.clients.stripe.retrieve_payment_intent(pi)).amount_received == 2500

    # A completed order never runs again.
    refused = await cli("order", "start", order_id, check=False)
    assert refused.refused("ORDER_FLOW_CLOSED") and "COMPLETED" in refused.stderr


async def test_a_terminated_order_says_which_run_it_starts(harness: Harness, cli: Cli) -> None:
    h = harness
    order_id = await h.seed_order("25.00")
    first = (await cli("order", "start", order_id, "--json")).json()
    assert first["run_number"] == 1 and first["previous_run"] is None
    handle = h.client.get_workflow_handle(first["workflow_id"])
    await handle.terminate("operator")
    again = await cli("order", "start", order_id)
    assert "started run 2 of order flow" in again.stdout
    assert "TERMINATED" in again.stdout and first["run_id"] in again.stdout
    await h.client.get_workflow_handle(first["workflow_id"]).terminate("test done")
