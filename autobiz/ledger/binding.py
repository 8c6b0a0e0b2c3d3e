"""Provider objects are bound to their owner; check the binding before a side effect.

A Stripe PaymentIntent names the order it pays for in its ``order_key`` metadata,
``{tenant}:{order_id}`` (set at checkout, see ``StripePayments.create_payment_intent`` /
``set_order_key``). Before money moves on it (capture, void, refund) the activity reads
the intent and refuses, as a security incident, when the key names another tenant
(``CROSS_TENANT_REFUSED``) or another order, or no order at all
(``PAYMENT_NOT_FOR_ORDER``). Shopify orders and Printful orders are bound by the
tenant's own credentials (a token opens one shop, one store) and by Printful's
``external_id``, derived from tenant and order.
"""

from __future__ import annotations

from collections.abc import Mapping

from autobiz.db.database import Database
from autobiz.errors import AutobizError
from autobiz.ledger.incidents import record_incident
from kernel.codes import ErrorCode

ORDER_KEY = "order_key"


class BindingRefused(AutobizError):
    """Non-retryable: the object belongs to another tenant or order."""

    code = ErrorCode.PAYMENT_NOT_FOR_ORDER

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, code=code)


BINDING_CODES = frozenset({ErrorCode.CROSS_TENANT_REFUSED, ErrorCode.PAYMENT_NOT_FOR_ORDER})


def payment_binding_error(
    tenant_id: str, order_id: str, payment_intent_id: str, metadata: Mapping[str, str]
) -> BindingRefused | None:
    """Why money must not move on this intent for ``order_id`` ("" when the flow acts
    for no order, e.g. a checkout that never became one), or None."""
    key = (metadata.get(ORDER_KEY) or "").removeprefix("order:")
    if ":" not in key:
        if not order_id:
            return None
        return BindingRefused(
            ErrorCode.PAYMENT_NOT_FOR_ORDER,
            f"PaymentIntent {payment_intent_id} is not bound to an order",
        )
    owner, _, order = key.rpartition(":")
    if owner != tenant_id:
        return BindingRefused(
            ErrorCode.CROSS_TENANT_REFUSED,
            f"PaymentIntent {payment_intent_id} belongs to another tenant",
        )
    if order != order_id:
        return BindingRefused(
            ErrorCode.PAYMENT_NOT_FOR_ORDER,
            f"PaymentIntent {payment_intent_id} pays for order {order}, not {order_id or 'none'}",
        )
    return None


async def require_payment_binding(
    db: Database,
    tenant_id: str,
    order_id: str,
    payment_intent_id: str,
    metadata: Mapping[str, str],
    *,
    action: str,
    actor: str,
) -> None:
    """Raise :class:`BindingRefused` (after recording the incident) unless the intent is
    this tenant's and this order's."""
    refused = payment_binding_error(tenant_id, order_id, payment_intent_id, metadata)
    if refused is None:
        return
    await record_incident(
        db,
        tenant_id,
        code=refused.code,
        actor=actor,
        detail={
            "action": action,
            "order_id": order_id,
            "payment_intent": payment_intent_id,
            "message": refused.message,
        },
    )
    raise refused
