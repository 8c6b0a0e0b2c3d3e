"""Refund and PaymentFailure branches with stand-in activities (see ``fakes``)."""

from __future__ import annotations

from datetime import timedelta

from kernel.codes import ErrorCode
from starters.flows import request_refund, start_payment_failure
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, refusal, shop_order

GET, EMAIL = "shopify.get_order@1", "sendgrid.send_email@1"
STRIPE_REFUND, SHOPIFY_REFUND = "stripe.create_refund@1", "shopify.refund_create@1"
READ, VOID, CANCEL = (
    "stripe.get_payment_intent@1",
    "stripe.cancel_payment@1",
    "shopify.cancel_order@1",
)
# Long waits (a stripe_event wakes them) and one short one (the dev server fires a timer
# up to about a second late, so exhaustion is tested with a single wait).
DUNNING = [timedelta(seconds=60)] * 3


def _order(fast: Fast, order_id: str, total_minor: int = 10000) -> str:
    fast.fakes.orders[order_id] = shop_order(
        order_id, total_minor=total_minor, financial_status="PAID"
    )
    return order_id


async def _refund(fast: Fast, order_id: str, amount_minor: int):
    return await request_refund(
        fast.client,
        fast.config,
        order_id=order_id,
        payment_intent_id=f"pi_{order_id}",
        amount_minor=amount_minor,
        currency="USD",
        task_queue=fast.task_queue,
        timing=TIMING,
    )


async def test_refund_below_threshold_refunds_without_approval(fast: Fast) -> None:
    order_id = _order(fast, "2001")
    result = await (await _refund(fast, order_id, 2000)).result()
    assert result.state == "refunded" and result.approval is None
    assert fast.fakes.names() == [GET, STRIPE_REFUND, SHOPIFY_REFUND, EMAIL]
    (stripe,) = fast.fakes.inputs(STRIPE_REFUND)
    (shopify,) = fast.fakes.inputs(SHOPIFY_REFUND)
    assert stripe.amount_minor == shopify.amount_minor == 2000
    assert stripe.refund_request_id == shopify.refund_request_id
    assert fast.fakes.opened == []


async def test_refund_above_threshold_waits_for_finance(fast: Fast) -> None:
    order_id = _order(fast, "2002")
    handle = await _refund(fast, order_id, 6000)
    request = await fast.fakes.opened_request()
    assert request.action == "refund" and request.required_role == "finance"
    assert fast.fakes.names() == [GET]  # no money moved while it waits
    assert (await fast.decide(handle.id, "ana", approve=True)).status == "approved"
    result = await handle.result()
    assert result.state == "refunded"
    assert fast.fakes.names() == [GET, STRIPE_REFUND, SHOPIFY_REFUND, EMAIL]


async def test_refund_denied_moves_no_money(fast: Fast) -> None:
    order_id = _order(fast, "2003")
    handle = await _refund(fast, order_id, 6000)
    await fast.decide(handle.id, "ana", approve=False)
    result = await handle.result()
    assert result.state == "denied"
    assert fast.fakes.names() == [GET]


async def test_refund_refused_by_provider_truth_ends_rejected(fast: Fast) -> None:
    order_id = _order(fast, "2004")
    fast.fakes.fail[STRIPE_REFUND] = refusal(
        ErrorCode.PAYMENT_NOT_FOR_ORDER, "the intent is another order's"
    )
    result = await (await _refund(fast, order_id, 2000)).result()
    assert result.state == "rejected"
    assert result.reason is not None and result.reason.startswith(ErrorCode.PAYMENT_NOT_FOR_ORDER)
    assert fast.fakes.names() == [GET, STRIPE_REFUND]  # no Shopify refund, no email


async def test_refund_above_order_total_is_rejected_before_asking(fast: Fast) -> None:
    order_id = _order(fast, "2005", total_minor=1000)
    result = await (await _refund(fast, order_id, 2000)).result()
    assert result.state == "rejected"
    assert fast.fakes.names() == [GET] and fast.fakes.opened == []


async def _payment_failure(fast: Fast, order_id: str, dunning: list[timedelta] = DUNNING):
    return await start_payment_failure(
        fast.client,
        fast.config,
        payment_intent_id=f"pi_{order_id}",
        order_id=order_id,
        task_queue=fast.task_queue,
        dunning=dunning,
        timing=TIMING,
    )


async def test_hard_decline_voids_and_cancels_without_dunning(fast: Fast) -> None:
    order_id = _order(fast, "3001", total_minor=2500)
    pi = f"pi_{order_id}"
    fast.fakes.intents[pi] = [payment_intent(pi, "requires_payment_method", decline="stolen_card")]
    result = await (await _payment_failure(fast, order_id)).result()
    assert result.state == "cancelled" and result.decline_class == "hard"
    assert fast.fakes.names() == [READ, GET, VOID, CANCEL, EMAIL]
    (void,) = fast.fakes.inputs(VOID)
    assert void.payment_intent_id == pi and void.reason == "abandoned"
    (cancel,) = fast.fakes.inputs(CANCEL)
    assert cancel.order_id == order_id and cancel.reason == "DECLINED"
    (email,) = fast.fakes.inputs(EMAIL)
    assert email.template == "order_cancelled_unpaid"


async def test_soft_decline_duns_then_recovers_when_paid(fast: Fast) -> None:
    order_id = _order(fast, "3002", total_minor=2500)
    pi = f"pi_{order_id}"
    unpaid = payment_intent(pi, "requires_payment_method", decline="insufficient_funds")
    fast.fakes.intents[pi] = [unpaid, payment_intent(pi, "succeeded")]
    handle = await _payment_failure(fast, order_id)
    await fast.fakes.called(EMAIL)  # the "pay again" notice: now it waits
    assert VOID not in fast.fakes.names()
    settled = {"topic": "payment_intent.succeeded", "payment_intent": pi, "dedup_id": "ev1"}
    await handle.signal("stripe_event", settled)
    result = await handle.result()
    assert result.state == "recovered" and result.decline_class == "soft"
    assert result.payment_status == "succeeded"
    # The signal only woke the wait: the re-read PaymentIntent decided.
    assert fast.fakes.names() == [READ, GET, EMAIL, READ, EMAIL]
    templates = [e.template for e in fast.fakes.inputs(EMAIL)]
    assert templates == ["payment_failed", "payment_recovered"]


async def test_soft_decline_exhausted_voids_and_cancels(fast: Fast) -> None:
    order_id = _order(fast, "3003", total_minor=2500)
    pi = f"pi_{order_id}"
    fast.fakes.intents[pi] = [
        payment_intent(pi, "requires_payment_method", decline="card_declined")
    ]
    result = await (await _payment_failure(fast, order_id, [timedelta(milliseconds=1)])).result()
    assert result.state == "cancelled" and result.decline_class == "soft"
    assert fast.fakes.names() == [READ, GET, EMAIL, READ, VOID, CANCEL, EMAIL]
