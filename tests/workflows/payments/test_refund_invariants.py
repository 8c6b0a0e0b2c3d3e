"""Refund money invariants, second line (issue 10 §4): the Refund workflow started
directly (no starter check) with a bad request refuses against Stripe's truth right
before the money moves: nothing is refunded in Stripe or Shopify, no email goes out, and
the refusal is a ``refund_refused`` trace decision with a stable code. And a refund run
again after both idempotency windows have passed finds its refund instead of making a
second one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.stripe_activities import StripeActivities
from autobiz.ledger.executor import SideEffectRunner
from autobiz.ledger.idempotency_store import utc_now
from kernel import tools
from kernel.tools.stripe import CreateRefundInput
from sandbox.server import ServerThread
from sandbox.state import SandboxState
from tests.support.calls import call_context
from tests.workflows.support import Harness
from workflows.payments.models import RefundResult

pytestmark = pytest.mark.integration


async def _refund(h: Harness, order_id: str, pi: str, amount: int) -> tuple[str, RefundResult]:
    handle = await h.request_refund(order_id, pi, amount)
    return handle.id, await handle.result()


async def _stripe_refunds(h: Harness, pi: str) -> list[Any]:
    return (await h.clients.stripe.list_refunds(payment_intent_id=pi)).refunds


async def _decisions(h: Harness, workflow_id: str) -> list[dict[str, Any]]:
    async with h.db.tenant(h.tenant) as s:
        rows = await s.fetch_all(
            "SELECT outcome, detail FROM traces WHERE tenant_id = %s AND workflow_id = %s "
            "AND kind = 'decision' ORDER BY seq",
            (h.tenant, workflow_id),
        )
    return [{"what": r["outcome"], **r["detail"]} for r in rows]


async def _assert_refused(h: Harness, wid: str, result: RefundResult, code: str) -> None:
    """Rejected with ``code``; no refund receipt, no Shopify refund, no email."""
    assert result.state == "rejected", result
    assert result.reason is not None and result.reason.startswith(f"{code}: "), result.reason
    assert result.stripe_refund_id is None and result.shopify_refund_id is None
    assert [r.tool for r in await h.receipts(wid)] == []
    refused = [d for d in await _decisions(h, wid) if d["what"] == "refund_refused"]
    assert [(d["code"], d["tool"]) for d in refused] == [(code, "stripe.create_refund@1")]
    assert await h.sandbox.control.outbox() == []


def _state(server: ServerThread) -> SandboxState:
    """The sandbox's in-process state (provider truth)."""
    app: Any = server.server.config.app
    state: SandboxState = app.state.sandbox
    return state


async def test_another_orders_payment_is_refused(
    harness: Harness, sandbox_server: ServerThread
) -> None:
    """The finding: money left order B's payment while Shopify and the email said A."""
    h = harness
    order_a, pi_a = await h.captured_order()
    order_b, pi_b = await h.captured_order()
    wid, result = await _refund(h, order_a, pi_b, 2000)
    await _assert_refused(h, wid, result, "PAYMENT_NOT_FOR_ORDER")
    assert f"{h.tenant}:{order_b}" in (result.reason or "")
    assert await _stripe_refunds(h, pi_b) == [] and await _stripe_refunds(h, pi_a) == []
    assert _state(sandbox_server).shopify.orders[int(order_a)]["refunds"] == []
    async with h.db.tenant(h.tenant) as session:  # and it is a security incident
        incidents = await session.fetch_all(
            "SELECT detail FROM audit_log WHERE tenant_id = %s "
            "AND action = 'security.PAYMENT_NOT_FOR_ORDER'",
            (h.tenant,),
        )
    assert [i["detail"]["payment_intent"] for i in incidents] == [pi_b]


async def test_payment_bound_to_no_order_is_refused(harness: Harness) -> None:
    h = harness
    order_id = await h.seed_order("100.00", financial_status="paid")
    pi = await h.clients.stripe.sdk.v1.payment_intents.create_async(
        {"amount": 10000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        {"idempotency_key": f"test-{uuid.uuid4()}"},
    )
    wid, result = await _refund(h, order_id, pi.id, 2000)
    await _assert_refused(h, wid, result, "PAYMENT_NOT_FOR_ORDER")
    assert await _stripe_refunds(h, pi.id) == []


async def test_above_captured_minus_refunded_is_refused(harness: Harness) -> None:
    """The order total (100.00) allows it; Stripe shows 30.00 captured, then 70.00 of a
    full capture already refunded outside AutoBiz (the dashboard). Below the approval
    threshold, so nothing is asked of anyone."""
    h = harness
    order_id, pi = await h.authorized_order("100.00")
    await h.clients.stripe.capture_payment_intent(
        pi, idempotency_key=f"test-{uuid.uuid4()}", amount_to_capture=3000
    )
    wid, result = await _refund(h, order_id, pi, 4500)
    await _assert_refused(h, wid, result, "REFUND_EXCEEDS_REFUNDABLE")
    assert "refundable" in (result.reason or "") and "30.00 USD" in (result.reason or "")
    assert await _stripe_refunds(h, pi) == []

    order2, pi2 = await h.captured_order()
    await h.clients.stripe.create_refund(
        payment_intent_id=pi2, idempotency_key=f"test-{uuid.uuid4()}", amount=7000
    )
    _, result2 = await _refund(h, order2, pi2, 4000)
    assert result2.state == "rejected" and (result2.reason or "").startswith(
        "REFUND_EXCEEDS_REFUNDABLE: "
    )
    assert "30.00 USD" in (result2.reason or "")
    assert [r.amount for r in await _stripe_refunds(h, pi2)] == [7000]
    # Within what is left it goes through.
    _, ok = await _refund(h, order2, pi2, 3000)
    assert ok.state == "refunded"


async def test_payment_in_another_currency_is_refused(harness: Harness) -> None:
    """The Shopify order is in USD, its payment in EUR: a USD refund must not move EUR."""
    h = harness
    order_id = await h.seed_order("100.00", financial_status="paid")
    pi = await h.authorize(10000, order_id, capture=True, currency="eur")
    wid, result = await _refund(h, order_id, pi, 2000)
    await _assert_refused(h, wid, result, "CURRENCY_MISMATCH")
    assert await _stripe_refunds(h, pi) == []


async def test_unknown_payment_intent_is_refused(harness: Harness) -> None:
    h = harness
    order_id = await h.seed_order("100.00", financial_status="paid")
    wid, result = await _refund(h, order_id, "pi_doesnotexist0000", 2000)
    await _assert_refused(h, wid, result, "PAYMENT_UNKNOWN")


async def test_refund_after_both_windows_is_found_not_repeated(
    harness: Harness, sandbox_server: ServerThread
) -> None:
    """Run a refund; then our idempotency window (24 h) passes and Stripe forgets the
    key (its own 24 h): the same call again must find the refund, not make another."""
    h = harness
    order_id, pi = await h.captured_order()
    wid, result = await _refund(h, order_id, pi, 2000)
    assert result.state == "refunded"
    [receipt] = [r for r in await h.receipts(wid) if r.tool == "stripe.create_refund"]

    description = await h.client.get_workflow_handle(wid).describe()
    rid = wid.rsplit(":", 1)[1]
    input = CreateRefundInput(
        payment_intent_id=pi,
        order_id=order_id,
        refund_request_id=rid,
        amount_minor=2000,
        currency="USD",
    )
    ctx = call_context(
        h.tenant,
        tools.stripe.CREATE_REFUND,
        input,
        workflow_id=wid,
        step="stripe_refund",
        workflow_type="refund",
        principal="cli:operator",
        run_id=description.run_id,
    )
    assert (ctx.internal_key, ctx.external_key) == (receipt.internal_key, receipt.external_key)

    _state(sandbox_server).stripe.idempotency.reset()  # Stripe's 24 h: the key is forgotten
    activities = StripeActivities(h.tenant_clients, h.db)
    later = utc_now() + timedelta(hours=25)  # ours: the recorded result has expired
    activities._runner = SideEffectRunner(h.db, clock=lambda: later)
    again = await ActivityEnvironment().run(activities.create_refund, ctx, input)

    refunds = await _stripe_refunds(h, pi)
    assert [r.id for r in refunds] == [result.stripe_refund_id] == [again.refund_id]
    assert refunds[0].amount == 2000
