"""The ordering gate's re-check against provider truth (``PreconditionProbe``).

When a held event's precondition has not arrived by the hold timeout, the gate releases
it anyway and asks the provider whether the precondition holds, so ``status_reason``
says "provider confirms" or "provider denies" instead of guessing:

* a refund or dispute waiting for its capture: is the Stripe PaymentIntent captured
  (``succeeded``)?
* a Printful event waiting for the order's start: is the Shopify order paid or
  authorised (so OrderFulfill has, or will have, a run to signal)?

Read-only calls; any provider error propagates and the gate records "provider re-check
failed" and releases anyway (an event must never be held forever).
"""

from __future__ import annotations

from typing import Any

from autobiz.providers.errors import NotFound
from autobiz.providers.shopify_client import ShopifyAdmin, order_gid
from autobiz.providers.stripe_client import StripePayments
from ingress.ordering import precondition_for
from ingress.tenants import Source

_FULFILLABLE = frozenset({"PAID", "AUTHORIZED", "PARTIALLY_PAID", "PARTIALLY_REFUNDED"})


class ProviderProbe:
    def __init__(self, stripe: StripePayments, shopify: ShopifyAdmin) -> None:
        self._stripe = stripe
        self._shopify = shopify

    async def holds(self, event: dict[str, Any]) -> bool | None:
        pre = precondition_for(event["source"], event["topic"])
        kind, _, key = str(event.get("entity_key") or "").partition(":")
        if pre is None or not key:
            return None
        required = {source for source, _ in pre.requires}
        if required == {Source.STRIPE} and kind == "payment_intent":
            pi = await self._stripe.retrieve_payment_intent(key)
            return pi.status == "succeeded"
        if required == {Source.SHOPIFY} and kind == "order":
            try:
                order = await self._shopify.get_order(order_gid(key))
            except NotFound:
                return False
            return order.cancelled_at is None and order.financial_status in _FULFILLABLE
        return None

    async def aclose(self) -> None:
        await self._stripe.aclose()
        await self._shopify.aclose()
