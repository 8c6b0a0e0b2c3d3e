"""StripePayments against the sandbox over real HTTP: flows and failure mapping."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from autobiz.providers.errors import (
    CardDeclined,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    StateConflict,
)
from autobiz.providers.stripe_client import StripePayments
from tests.support.sandbox import Sandbox, with_timeout

pytestmark = pytest.mark.integration


def key() -> str:
    return f"autobiz:{uuid.uuid4().hex}"


@pytest.fixture
async def stripe_client(sandbox: Sandbox):
    client = StripePayments(sandbox.settings)
    yield client
    await client.aclose()


async def authorize(client: StripePayments, amount: int = 2500, order_key: str | None = None):
    return await client.create_payment_intent(
        amount=amount,
        currency="usd",
        order_key=order_key or uuid.uuid4().hex,
        idempotency_key=key(),
        payment_method="pm_card_visa",
        confirm=True,
    )


async def test_authorize_capture_refund(stripe_client: StripePayments) -> None:
    pi = await authorize(stripe_client)
    assert (pi.status, pi.amount_capturable) == ("requires_capture", 2500)
    captured = await stripe_client.capture_payment_intent(pi.id, idempotency_key=key())
    assert (captured.status, captured.amount_received) == ("succeeded", 2500)
    refund = await stripe_client.create_refund(
        payment_intent_id=pi.id, idempotency_key=key(), amount=1000, reason="requested_by_customer"
    )
    assert (refund.amount, refund.status, refund.payment_intent) == (1000, "succeeded", pi.id)
    assert (await stripe_client.retrieve_refund(refund.id)).id == refund.id


async def test_order_key_set_after_checkout_keeps_the_other_metadata(
    stripe_client: StripePayments,
) -> None:
    pi = await stripe_client.create_payment_intent(
        amount=900,
        currency="usd",
        order_key="shop:checkout-1",
        idempotency_key=key(),
        metadata={"cart": "c-1"},
    )
    updated = await stripe_client.set_order_key(pi.id, "shop:1001", idempotency_key=key())
    assert updated.metadata == {"cart": "c-1", "order_key": "shop:1001"}
    assert (await stripe_client.retrieve_payment_intent(pi.id)).metadata["order_key"] == "shop:1001"
    with pytest.raises(ValueError):
        await stripe_client.set_order_key(pi.id, "shop:1002", idempotency_key="")


async def test_partial_capture_then_refunds_never_exceed_captured(
    stripe_client: StripePayments,
) -> None:
    pi = await authorize(stripe_client, amount=5000)
    await stripe_client.capture_payment_intent(pi.id, idempotency_key=key(), amount_to_capture=3000)
    await stripe_client.create_refund(payment_intent_id=pi.id, idempotency_key=key(), amount=2000)
    with pytest.raises(InvalidRequest) as too_much:
        await stripe_client.create_refund(
            payment_intent_id=pi.id, idempotency_key=key(), amount=1001
        )
    assert too_much.value.provider_code == "amount_too_large"
    assert not too_much.value.retryable
    rest = await stripe_client.create_refund(payment_intent_id=pi.id, idempotency_key=key())
    assert rest.amount == 1000
    with pytest.raises(StateConflict) as again:
        await stripe_client.create_refund(payment_intent_id=pi.id, idempotency_key=key(), amount=1)
    assert again.value.provider_code == "charge_already_refunded"


async def test_cancel_voids_the_authorization_and_capture_is_then_refused(
    stripe_client: StripePayments,
) -> None:
    pi = await authorize(stripe_client)
    canceled = await stripe_client.cancel_payment_intent(
        pi.id, idempotency_key=key(), reason="requested_by_customer"
    )
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "requested_by_customer")
    with pytest.raises(StateConflict) as exc:
        await stripe_client.capture_payment_intent(pi.id, idempotency_key=key())
    assert exc.value.provider_code == "payment_intent_unexpected_state"
    assert not exc.value.retryable


async def test_uncaptured_payment_cannot_be_refunded(stripe_client: StripePayments) -> None:
    pi = await authorize(stripe_client)
    with pytest.raises(InvalidRequest):
        await stripe_client.create_refund(payment_intent_id=pi.id, idempotency_key=key())


async def test_confirm_in_a_second_step(stripe_client: StripePayments) -> None:
    pi = await stripe_client.create_payment_intent(
        amount=700, currency="eur", order_key="o-2step", idempotency_key=key()
    )
    assert pi.status == "requires_payment_method"
    confirmed = await stripe_client.confirm_payment_intent(
        pi.id, idempotency_key=key(), payment_method="pm_card_mastercard"
    )
    assert confirmed.status == "requires_capture"


@pytest.mark.parametrize(
    ("payment_method", "decline_code", "hard"),
    [
        ("pm_card_chargeDeclined", "generic_decline", False),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", False),
        ("pm_card_chargeDeclinedLostCard", "lost_card", True),
        ("pm_card_chargeDeclinedStolenCard", "stolen_card", True),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", True),
        ("pm_card_chargeDeclinedFraudulent", "fraudulent", True),
    ],
)
async def test_declines_map_to_non_retryable_card_declined(
    stripe_client: StripePayments, payment_method: str, decline_code: str, hard: bool
) -> None:
    order_key = uuid.uuid4().hex
    with pytest.raises(CardDeclined) as exc:
        await stripe_client.create_payment_intent(
            amount=1200,
            currency="usd",
            order_key=order_key,
            idempotency_key=key(),
            payment_method=payment_method,
            confirm=True,
        )
    assert exc.value.retryable is False
    assert exc.value.decline_code == decline_code
    assert exc.value.hard is hard
    assert exc.value.http_status == 402
    [pi] = await stripe_client.find_payment_intents(order_key)
    assert exc.value.payment_intent_id == pi.id
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error is not None
    assert pi.last_payment_error.decline_code == decline_code


async def test_retry_with_the_same_key_creates_one_payment_intent(
    sandbox: Sandbox, stripe_client: StripePayments
) -> None:
    k, order_key = key(), uuid.uuid4().hex
    args: dict[str, Any] = dict(amount=900, currency="usd", order_key=order_key, idempotency_key=k)
    first = await stripe_client.create_payment_intent(**args)
    second = await stripe_client.create_payment_intent(**args)
    assert first.id == second.id
    assert len(await stripe_client.find_payment_intents(order_key)) == 1
    with pytest.raises(IdempotencyConflict) as exc:
        await stripe_client.create_payment_intent(**{**args, "amount": 901})
    assert exc.value.retryable is False


async def test_an_explicit_key_is_required(stripe_client: StripePayments) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        await stripe_client.create_payment_intent(
            amount=100, currency="usd", order_key="o", idempotency_key=""
        )


async def test_5xx_429_and_timeout_are_retryable(sandbox: Sandbox) -> None:
    fast = StripePayments(with_timeout(sandbox.settings, 0.5))
    try:
        path = "/stripe/v1/payment_intents"
        await sandbox.control.fault("error", path, method="POST", status=503)
        with pytest.raises(ProviderUnavailable) as unavailable:
            await authorize(fast)
        assert unavailable.value.retryable and unavailable.value.http_status == 503

        await sandbox.control.fault("rate_limit", path, method="POST", retry_after=7)
        with pytest.raises(RateLimited) as limited:
            await authorize(fast)
        assert limited.value.retryable and limited.value.retry_after == 7

        await sandbox.control.fault("timeout", path, method="POST", hang_seconds=5)
        with pytest.raises(ProviderUnavailable) as timed_out:
            await authorize(fast)
        assert timed_out.value.retryable
        assert await sandbox.control.stripe_payment_intents() == []
    finally:
        await fast.aclose()


async def test_commit_then_drop_and_the_retry_yields_one_payment_intent(sandbox: Sandbox) -> None:
    fast = StripePayments(with_timeout(sandbox.settings, 0.5))
    try:
        await sandbox.control.fault(
            "commit_then_drop", "/stripe/v1/payment_intents", method="POST", hang_seconds=5
        )
        k, order_key = key(), uuid.uuid4().hex
        args: dict[str, Any] = dict(
            amount=4200,
            currency="usd",
            order_key=order_key,
            idempotency_key=k,
            payment_method="pm_card_visa",
            confirm=True,
        )
        with pytest.raises(ProviderUnavailable):
            await fast.create_payment_intent(**args)
        committed = await sandbox.control.stripe_payment_intents()
        assert len(committed) == 1  # the provider did commit
        retried = await fast.create_payment_intent(**args)
        assert retried.id == committed[0]["id"]
        assert retried.status == "requires_capture"
        assert len(await sandbox.control.stripe_payment_intents()) == 1
    finally:
        await fast.aclose()


async def test_unknown_ids_are_not_found(stripe_client: StripePayments) -> None:
    with pytest.raises(NotFound):
        await stripe_client.retrieve_payment_intent("pi_does_not_exist")


async def test_events_list_filters_and_pages(stripe_client: StripePayments) -> None:
    pi = await authorize(stripe_client)
    await stripe_client.capture_payment_intent(pi.id, idempotency_key=key())
    page = await stripe_client.list_events(types=["payment_intent.succeeded"])
    assert [e.type for e in page.events] == ["payment_intent.succeeded"]
    assert page.events[0].object_id == pi.id
    first = await stripe_client.list_events(limit=2)
    assert first.has_more
    rest = await stripe_client.list_events(starting_after=first.events[-1].id)
    all_ids = [e.id for e in first.events + rest.events]
    assert len(all_ids) == len(set(all_ids)) == len((await stripe_client.list_events()).events)
