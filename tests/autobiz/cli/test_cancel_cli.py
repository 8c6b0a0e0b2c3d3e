"""`autobiz cancel request` (OrderCancellation, WF04) and its approval through the CLI."""

from __future__ import annotations

import pytest

from tests.autobiz.cli.support import Cli
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e


async def test_cancel_voids_then_refuses_a_second_run(harness: Harness, cli: Cli) -> None:
    h = harness
    order_id = await h.seed_order("25.00")
    pi = await h.authorize(2500, order_id)
    bad = await cli("cancel", "request", order_id, "--reason", "BORED", check=False)
    assert bad.refused("INPUT_INVALID") and "reason" in bad.stderr

    out = (
        await cli("cancel", "request", order_id, "--payment-intent", pi, "--wait", "--json")
    ).json()
    assert out["workflow_id"] == f"cancel:{h.tenant}:{order_id}" and out["started"] is True
    assert out["reason"] == "CUSTOMER"
    result = out["result"]
    assert result["state"] == "cancelled" and result["payment_action"] == "void"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "canceled"

    again = await cli("cancel", "request", order_id, check=False)
    assert again.refused("REQUEST_CLOSED") and "COMPLETED" in again.stderr


async def test_cancel_above_threshold_is_approved_from_the_cli(harness: Harness, cli: Cli) -> None:
    h = harness
    # ana signs her decision with her own key, registered beforehand (an admin act).
    await cli("approvals", "keys", "create", "--as", "ana")
    order_id = await h.seed_order("80.00", financial_status="paid")
    pi = await h.authorize(8000, order_id, capture=True)
    started = await cli(
        "cancel", "request", order_id, "--payment-intent", pi, "--reason", "inventory"
    )
    wid = f"cancel:{h.tenant}:{order_id}"
    assert "started cancellation" in started.stdout and wid in started.stdout
    status = await h.status_when(
        wid, lambda s: s.approval is not None and s.approval.status == "pending"
    )
    assert status.approval is not None
    [item] = (await cli("approvals", "list", "--json")).json()["approvals"]
    assert item["workflow_id"] == wid and item["request_id"] == status.approval.request_id
    assert (item["amount_minor"], item["required_roles"]) == (8000, ["finance"])
    await cli("approvals", "approve", item["request_id"], "--as", "ana")
    handle = h.client.get_workflow_handle(wid)
    result = await handle.result()
    assert result["state"] == "cancelled" and result["payment_action"] == "refund"
