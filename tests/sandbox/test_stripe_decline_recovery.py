"""Stripe's decline semantics the PaymentFailure flow relies on, against the sandbox:
a declined confirmation leaves the intent in ``requires_payment_method`` with
``last_payment_error`` and sends ``payment_intent.payment_failed``; a later confirmation
with a good card succeeds; an unpaid intent can be cancelled (abandoned)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from autobiz.providers.errors import CardDeclined, StateConflict
from autobiz.providers.stripe_client import PaymentIntentInfo, StripePayments
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def stripe_client(sandbox: Sandbox) -> AsyncIterator[StripePayments]:
    client = StripePayments(sandbox.settings)
    try:
        yield client
    finally:
        await client.aclose()


def key() -> str:
    return f"test-{uuid.uuid4()}"


async def declined(client: StripePayments, pm: str, *, capture: str = "manual") -> str:
    with pytest.raises(CardDeclined) as exc:
        await client.create_payment_intent(
            amount=4200,
            currency="usd",
            order_key=f"t:{uuid.uuid4().hex}",
            idempotency_key=key(),
            payment_method=pm,
            confirm=True,
            capture_method="manual" if capture == "manual" else "automatic",
        )
    assert exc.value.payment_intent_id is not None
    return exc.value.payment_intent_id


async def events_for(client: StripePayments, pi_id: str) -> list[str]:
    """The types of the events about this intent or its charges, oldest first."""
    page = await client.list_events(limit=100)
    return [
        e.type
        for e in reversed(page.events)
        if pi_id in (e.object_id, e.data.get("object", {}).get("payment_intent"))
    ]


@pytest.mark.parametrize(
    ("pm", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent"),
        ("pm_card_chargeDeclinedVelocityLimitExceeded", "card_declined", "card_velocity_exceeded"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ],
)
async def test_a_decline_leaves_the_intent_waiting_for_a_payment_method(
    stripe_client: StripePayments, pm: str, code: str, decline_code: str
) -> None:
    pi_id = await declined(stripe_client, pm)
    pi = await stripe_client.retrieve_payment_intent(pi_id)
    assert pi.status == "requires_payment_method"
    assert pi.amount_capturable == 0 and pi.amount_received == 0
    error = pi.last_payment_error
    assert error is not None
    assert (error.type, error.code, error.decline_code) == ("card_error", code, decline_code)
    assert error.message
    types = await events_for(stripe_client, pi_id)
    assert types[-1] == "payment_intent.payment_failed"
    assert "charge.failed" in types


@pytest.mark.parametrize(
    ("capture", "status", "topic"),
    [
        ("manual", "requires_capture", "payment_intent.amount_capturable_updated"),
        ("automatic", "succeeded", "payment_intent.succeeded"),
    ],
)
async def test_a_later_confirmation_with_a_good_card_succeeds(
    stripe_client: StripePayments, capture: str, status: str, topic: str
) -> None:
    pi_id = await declined(
        stripe_client, "pm_card_chargeDeclinedInsufficientFunds", capture=capture
    )
    paid: PaymentIntentInfo = await stripe_client.confirm_payment_intent(
        pi_id, idempotency_key=key(), payment_method="pm_card_visa"
    )
    assert paid.status == status and paid.last_payment_error is None
    settled = paid.amount_capturable if capture == "manual" else paid.amount_received
    assert settled == 4200
    types = await events_for(stripe_client, pi_id)
    assert types[-2:] == ["charge.succeeded", topic]
    assert types.count("payment_intent.payment_failed") == 1


async def test_an_unpaid_intent_is_abandoned_and_cannot_be_paid_after(
    stripe_client: StripePayments,
) -> None:
    pi_id = await declined(stripe_client, "pm_card_chargeDeclined")
    canceled = await stripe_client.cancel_payment_intent(
        pi_id, idempotency_key=key(), reason="abandoned"
    )
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"
    assert (await events_for(stripe_client, pi_id))[-1] == "payment_intent.canceled"
    with pytest.raises(StateConflict):
        await stripe_client.confirm_payment_intent(
            pi_id, idempotency_key=key(), payment_method="pm_card_visa"
        )
