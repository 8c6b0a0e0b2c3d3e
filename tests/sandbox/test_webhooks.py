"""Webhooks the sandbox sends: signatures verify with each provider's documented
algorithm, and delivery is at least once (retries, duplicates, reordering)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
import stripe

from autobiz.providers.printful_client import OrderItem, PrintfulOrders, Recipient
from autobiz.providers.stripe_client import StripePayments
from tests.support.sandbox import Sandbox, WebhookSink
from tests.workflows.support import eventually

pytestmark = pytest.mark.integration


async def stripe_authorize(sandbox: Sandbox, pm: str = "pm_card_visa") -> None:
    client = StripePayments(sandbox.settings)
    try:
        await client.create_payment_intent(
            amount=1500,
            currency="usd",
            order_key=uuid.uuid4().hex,
            idempotency_key=uuid.uuid4().hex,
            payment_method=pm,
            confirm=True,
        )
    finally:
        await client.aclose()


async def test_stripe_webhooks_verify_with_the_sdk(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    await stripe_authorize(sandbox)
    received = await webhook_sink.wait_for(lambda r: len(r) >= 3)
    secret = sandbox.settings.stripe.webhook_secret.get_secret_value()
    types = []
    for request in received:
        assert request.path == "/webhooks/stripe"
        event = stripe.Webhook.construct_event(
            request.body.decode(), request.headers["stripe-signature"], secret
        )
        types.append(event.type)
    assert types == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
    ]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            received[0].body.decode(), received[0].headers["stripe-signature"], "whsec_someone_else"
        )


async def test_stripe_decline_sends_payment_failed(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    with pytest.raises(Exception, match="insufficient"):
        await stripe_authorize(sandbox, "pm_card_chargeDeclinedInsufficientFunds")
    received = await webhook_sink.wait_for(lambda r: len(r) >= 3)
    failed = [
        json.loads(r.body)
        for r in received
        if json.loads(r.body)["type"] == "payment_intent.payment_failed"
    ]
    assert failed[0]["data"]["object"]["last_payment_error"]["decline_code"] == "insufficient_funds"


async def test_shopify_webhooks_carry_hmac_and_headers(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    order = await sandbox.control.seed_shopify_order(email="ada@example.com")
    received = await webhook_sink.wait_for(lambda r: len(r) >= 2)
    secret = sandbox.settings.shopify.webhook_secret.get_secret_value().encode()
    for request in received:
        expected = base64.b64encode(
            hmac.new(secret, request.body, hashlib.sha256).digest()
        ).decode()
        assert hmac.compare_digest(request.headers["x-shopify-hmac-sha256"], expected)
        assert request.headers["x-shopify-shop-domain"] == sandbox.settings.shopify.shop_domain
        for header in ("x-shopify-webhook-id", "x-shopify-event-id", "x-shopify-triggered-at"):
            assert request.headers[header]
        assert json.loads(request.body)["id"] == order["legacy_id"]
    assert [r.headers["x-shopify-topic"] for r in received] == ["orders/create", "orders/paid"]


async def test_printful_webhooks_carry_a_hex_hmac(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    client = PrintfulOrders(sandbox.settings)
    try:
        order = await client.create_order(
            external_id="order:t1:pf1",
            recipient=Recipient(name="Ada", address1="1 Main", city="X", country_code="US"),
            items=[OrderItem(catalog_variant_id=1, quantity=1)],
        )
        await client.confirm_order(order.id)
    finally:
        await client.aclose()
    await sandbox.control.advance_printful(order.id, "ship")
    received = await webhook_sink.wait_for(lambda r: len(r) >= 3)
    secret = sandbox.settings.printful.webhook_secret.get_secret_value().encode()
    for request in received:
        expected = hmac.new(secret, request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["x-pf-webhook-signature"], expected)
    payloads = [json.loads(r.body) for r in received]
    assert [p["type"] for p in payloads] == ["order_created", "order_updated", "shipment_sent"]
    assert payloads[-1]["data"]["shipment"]["tracking_number"]


async def test_failed_deliveries_are_retried(sandbox: Sandbox, webhook_sink: WebhookSink) -> None:
    webhook_sink.fail_next = 2
    await sandbox.control.webhooks(target_url=webhook_sink.url, retry_seconds=0.05)
    await sandbox.control.seed_shopify_order(financial_status="pending")  # one event: orders/create
    await webhook_sink.wait_for(lambda r: len(r) >= 3)

    async def three_recorded() -> list[tuple[int, int, bool]] | None:
        # The sandbox records an attempt once its answer is in, just after the sink saw it.
        found = [
            (d["attempt"], d["status"], d["delivered"]) for d in await sandbox.control.deliveries()
        ]
        return found if len(found) >= 3 else None

    attempts = await eventually(three_recorded, within=10, what="three delivery records")
    assert attempts == [(1, 500, False), (2, 500, False), (3, 200, True)]
    ids = {r.headers["x-shopify-webhook-id"] for r in webhook_sink.received}
    assert len(ids) == 1  # a retry is the same delivery


async def test_duplicates_switch_delivers_each_event_twice(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url, duplicates=True)
    await sandbox.control.seed_shopify_order(financial_status="pending")
    received = await webhook_sink.wait_for(lambda r: len(r) >= 2)
    assert received[0].body == received[1].body
    assert received[0].headers["x-shopify-event-id"] == received[1].headers["x-shopify-event-id"]


async def test_reorder_switch_swaps_neighbours(sandbox: Sandbox, webhook_sink: WebhookSink) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url, reorder=True)
    await sandbox.control.seed_shopify_order()  # orders/create then orders/paid
    received = await webhook_sink.wait_for(lambda r: len(r) >= 2)
    assert [r.headers["x-shopify-topic"] for r in received] == ["orders/paid", "orders/create"]
    await sandbox.control.seed_shopify_order(financial_status="pending")  # one event, held back
    assert await sandbox.control.flush_webhooks() == 1
    await webhook_sink.wait_for(lambda r: len(r) >= 3)


async def test_events_wait_for_a_target(sandbox: Sandbox, webhook_sink: WebhookSink) -> None:
    await sandbox.control.seed_shopify_order(financial_status="pending")
    config = await sandbox.control.webhooks(target_url=None)
    assert config["pending"] >= 0 and webhook_sink.received == []
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    received = await webhook_sink.wait_for(lambda r: len(r) >= 1)
    assert received[0].headers["x-shopify-topic"] == "orders/create"
