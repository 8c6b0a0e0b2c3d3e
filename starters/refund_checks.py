"""The refund's money invariants on our ledger, before anything is started.

What the ledger knows about an order's payment is its receipts: the order flow's
``stripe.capture_payment`` receipt (the PaymentIntent, the captured amount, the currency)
and the ``stripe.create_refund`` receipts of earlier refunds of that PaymentIntent (by any
flow: Refund, OrderCancellation, OrderFulfill's compensation). When the ledger knows no
capture for the order, the request is refused (``PAYMENT_UNKNOWN``) rather than guessed
at. The workflow checks again against Stripe (``activities.stripe_activities``), which
also sees refunds made outside AutoBiz.
"""

from __future__ import annotations

from autobiz.db.database import Database
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode
from kernel.refunds import PaymentStanding, order_key, refund_refusal


class RefundRefused(AutobizError):
    """A refund the invariants refuse; its ``code`` (one of ``kernel.refunds``'s) says
    which, and nothing was started."""


async def ledger_standing(db: Database, tenant_id: str, order_id: str) -> PaymentStanding | None:
    """The order's captured payment and what has been refunded of it, per our receipts."""
    async with db.tenant(tenant_id) as s:
        capture = await s.fetch_one(
            "SELECT provider_object_id, amount_minor, currency FROM receipts "
            "WHERE tenant_id = %s AND tool = 'stripe.capture_payment' "
            "AND details->>'order_id' = %s AND provider_object_id IS NOT NULL "
            "AND status = 'succeeded' ORDER BY created_at DESC LIMIT 1",
            (tenant_id, order_id),
        )
        if capture is None:
            return None
        pi = str(capture["provider_object_id"])
        # Refund receipts name their PaymentIntent; older ones only their order (whose
        # one captured payment is this one).
        refunded = await s.fetch_val(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM receipts "
            "WHERE tenant_id = %s AND tool = 'stripe.create_refund' "
            "AND status NOT IN ('failed', 'canceled') "
            "AND (details->>'payment_intent_id' = %s OR "
            "(details->>'payment_intent_id' IS NULL AND details->>'order_id' = %s))",
            (tenant_id, pi, order_id),
        )
    return PaymentStanding(
        payment_intent_id=pi,
        currency=str(capture["currency"]).strip().upper(),
        captured_minor=int(capture["amount_minor"] or 0),
        refunded_minor=int(refunded or 0),
        order_key=order_key(tenant_id, order_id),
    )


async def _captured_for(db: Database, tenant_id: str, payment_intent_id: str) -> str | None:
    """The order this tenant's ledger captured ``payment_intent_id`` for, if any."""
    async with db.tenant(tenant_id) as s:
        order = await s.fetch_val(
            "SELECT details->>'order_id' FROM receipts WHERE tenant_id = %s "
            "AND tool = 'stripe.capture_payment' AND provider_object_id = %s "
            "ORDER BY created_at DESC LIMIT 1",
            (tenant_id, payment_intent_id),
        )
    return None if order is None else str(order)


async def check_refund_request(
    db: Database,
    *,
    tenant_id: str,
    order_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str,
) -> PaymentStanding:
    """Raise :class:`RefundRefused` unless the ledger shows the refund may be made;
    return what it showed."""
    standing = await ledger_standing(db, tenant_id, order_id)
    problem = refund_refusal(
        tenant_id=tenant_id,
        order_id=order_id,
        payment_intent_id=payment_intent_id,
        amount_minor=amount_minor,
        currency=currency,
        standing=standing,
        source="our ledger",
    )
    if problem is not None:
        message = problem.message
        if problem.code == ErrorCode.PAYMENT_NOT_FOR_ORDER:
            other = await _captured_for(db, tenant_id, payment_intent_id)
            if other is not None:
                message += f"; {payment_intent_id} paid for order {other}"
        raise RefundRefused(message, code=problem.code, hint=problem.hint)
    assert standing is not None
    return standing
