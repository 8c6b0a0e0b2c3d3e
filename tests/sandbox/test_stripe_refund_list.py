"""``GET /v1/refunds`` as Stripe documents it (by PaymentIntent, by creation time, newest
first, cursor pages), through ``StripePayments.list_refunds`` over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from autobiz.providers.errors import NotFound
from autobiz.providers.stripe_client import StripePayments
from tests.support.orders import card_payment
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def stripe_client(sandbox: Sandbox) -> AsyncIterator[StripePayments]:
    client = StripePayments(sandbox.settings)
    yield client
    await client.aclose()


async def _captured(stripe: StripePayments, amount: int) -> str:
    return await card_payment(stripe, amount, f"o-{uuid.uuid4().hex[:6]}", capture=True)


async def _refund(stripe: StripePayments, pi: str, amount: int) -> str:
    refund = await stripe.create_refund(
        payment_intent_id=pi,
        idempotency_key=str(uuid.uuid4()),
        amount=amount,
        metadata={"refund_request_id": f"rr-{amount}"},
    )
    return refund.id


async def test_lists_by_intent_newest_first_in_pages(stripe_client: StripePayments) -> None:
    first_pi, other_pi = await _captured(stripe_client, 3000), await _captured(stripe_client, 900)
    mine = [await _refund(stripe_client, first_pi, amount) for amount in (100, 200, 300)]
    await _refund(stripe_client, other_pi, 400)

    page = await stripe_client.list_refunds(payment_intent_id=first_pi, limit=2)
    assert [r.id for r in page.refunds] == [mine[2], mine[1]] and page.has_more
    assert page.refunds[0].metadata == {"refund_request_id": "rr-300"}
    rest = await stripe_client.list_refunds(
        payment_intent_id=first_pi, limit=2, starting_after=page.refunds[-1].id
    )
    assert [r.id for r in rest.refunds] == [mine[0]] and not rest.has_more
    assert {r.payment_intent for r in page.refunds + rest.refunds} == {first_pi}


async def test_lists_by_creation_time(stripe_client: StripePayments) -> None:
    pi = await _captured(stripe_client, 1000)
    refund_id = await _refund(stripe_client, pi, 250)
    created = (await stripe_client.retrieve_refund(refund_id)).created
    around = await stripe_client.list_refunds(created_gte=created - 5, created_lte=created + 5)
    assert refund_id in [r.id for r in around.refunds]
    later = await stripe_client.list_refunds(created_gte=created + 1)
    assert later.refunds == []


async def test_unknown_intent_is_not_found(stripe_client: StripePayments) -> None:
    with pytest.raises(NotFound):
        await stripe_client.list_refunds(payment_intent_id="pi_doesnotexist")
