"""Stripe idempotency as the official SDK sees it, against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import stripe

from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def sdk(sandbox: Sandbox):
    http = stripe.HTTPXClient(timeout=10)
    client = stripe.StripeClient(
        sandbox.settings.stripe.api_key.get_secret_value(),
        base_addresses={"api": sandbox.settings.stripe.api_base},
        max_network_retries=0,
        http_client=http,
    )
    yield client
    await http.close_async()


async def test_same_key_creates_one_payment_intent_and_replays(
    sandbox: Sandbox, sdk: stripe.StripeClient
) -> None:
    key = str(uuid.uuid4())
    params: Any = {"amount": 1999, "currency": "usd", "metadata": {"order_key": "o-1"}}
    first = await sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
    second = await sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
    assert first.id == second.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [pi["id"] for pi in await sandbox.control.stripe_payment_intents()] == [first.id]


async def test_different_amount_same_key_raises_the_sdk_idempotency_error(
    sdk: stripe.StripeClient,
) -> None:
    key = str(uuid.uuid4())
    await sdk.v1.payment_intents.create_async(
        {"amount": 1000, "currency": "usd"}, {"idempotency_key": key}
    )
    with pytest.raises(stripe.IdempotencyError) as exc:
        await sdk.v1.payment_intents.create_async(
            {"amount": 1001, "currency": "usd"}, {"idempotency_key": key}
        )
    assert exc.value.http_status == 400


async def test_a_recorded_decline_replays_with_its_status(
    sandbox: Sandbox, sdk: stripe.StripeClient
) -> None:
    key = str(uuid.uuid4())
    params: Any = {
        "amount": 500,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
    }
    for _ in range(2):
        with pytest.raises(stripe.CardError) as exc:
            await sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
        assert exc.value.http_status == 402
        assert exc.value.error is not None and exc.value.error.decline_code == "generic_decline"
    assert len(await sandbox.control.stripe_payment_intents()) == 1


async def test_validation_failures_are_not_recorded(sdk: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    missing_currency: Any = {"amount": 100}
    with pytest.raises(stripe.InvalidRequestError) as first:
        await sdk.v1.payment_intents.create_async(missing_currency, {"idempotency_key": key})
    assert first.value.param == "currency"
    # Stripe saves a result only once the endpoint started executing: the key is still free,
    # so other parameters under it are not an idempotency error.
    created = await sdk.v1.payment_intents.create_async(
        {"amount": 100, "currency": "usd"}, {"idempotency_key": key}
    )
    assert created.status == "requires_payment_method"


async def test_same_key_while_in_flight_is_409(sandbox: Sandbox, sdk: stripe.StripeClient) -> None:
    await sandbox.control.fault(
        "latency", "/stripe/v1/payment_intents", method="POST", latency_ms=3000
    )
    key = str(uuid.uuid4())
    params: Any = {"amount": 300, "currency": "usd"}
    slow = asyncio.create_task(
        sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
    )
    await asyncio.sleep(0.5)  # let the first request reach the server and start executing
    with pytest.raises(stripe.APIError) as exc:
        await sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
    assert exc.value.http_status == 409
    first = await slow
    replay = await sdk.v1.payment_intents.create_async(params, {"idempotency_key": key})
    assert replay.id == first.id
