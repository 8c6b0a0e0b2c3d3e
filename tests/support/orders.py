"""An order and its payment in the sandbox, as a shop's customer leaves them: a Shopify
order of one tee, and a confirmed PaymentIntent for it (held, or captured)."""

from __future__ import annotations

import uuid
from typing import Any

from autobiz.providers.stripe_client import StripePayments
from sandbox.control_client import SandboxControl


async def seed_order(
    control: SandboxControl,
    shop_domain: str | None,
    price: str = "25.00",
    *,
    financial_status: str = "authorized",
    quantity: int = 1,
) -> str:
    """A Shopify order in ``shop_domain`` (None: the sandbox's default shop); its
    legacy id."""
    shop: dict[str, Any] = {} if shop_domain is None else {"shop": shop_domain}
    seeded = await control.seed_shopify_order(
        **shop,
        email="customer@example.com",
        financial_status=financial_status,
        line_items=[{"title": "Tee", "quantity": quantity, "price": price, "sku": "PF-4012"}],
    )
    return str(seeded["legacy_id"])


async def authorize(
    stripe: StripePayments,
    tenant: str,
    amount_minor: int,
    order_id: str,
    *,
    capture: bool = False,
    currency: str = "usd",
) -> str:
    """A confirmed PaymentIntent paying for the order: held (or with ``capture``,
    captured); its id."""
    return await card_payment(
        stripe, amount_minor, f"{tenant}:{order_id}", capture=capture, currency=currency
    )


async def card_payment(
    stripe: StripePayments,
    amount_minor: int,
    order_key: str,
    *,
    capture: bool = False,
    currency: str = "usd",
) -> str:
    """A PaymentIntent confirmed with Stripe's test Visa, tagged ``order_key``: held (or
    with ``capture``, captured at once); its id."""
    pi = await stripe.create_payment_intent(
        amount=amount_minor,
        currency=currency,
        order_key=order_key,
        idempotency_key=f"test-{uuid.uuid4()}",
        payment_method="pm_card_visa",
        confirm=True,
        capture_method="automatic" if capture else "manual",
    )
    return pi.id
