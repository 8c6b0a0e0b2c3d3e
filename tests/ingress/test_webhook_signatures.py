"""Signature checks through the app and the real database: each case answers the
expected status, and a rejected request stores nothing."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import SecretStr

from autobiz.db.database import Database
from ingress.tenants import StaticWebhookSecrets
from tests.conftest import new_tenant
from tests.ingress.conftest import HarnessFactory, tenant_config
from tests.ingress.support import (
    SHOPIFY_PREVIOUS,
    charge,
    dumps,
    printful_event,
    printful_header,
    shopify_header,
    shopify_order,
    stripe_event,
    stripe_header,
)

pytestmark = pytest.mark.integration


async def test_valid_stripe_is_stored_with_hash(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("payment_intent.payment_failed", {"id": "pi_1", "metadata": {}}))
    resp = await h.stripe(body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "pending"
    [row] = await h.rows()
    assert row["source"] == "stripe" and row["signature_valid"] is True
    assert row["provider_event_id"] == json.loads(body)["id"]
    assert row["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert row["topic"] == "payment_intent.payment_failed"
    assert row["entity_key"] == "payment_intent:pi_1"
    assert row["received_at"] == h.clock.now


async def test_valid_shopify_and_printful_are_stored(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(shopify_order(1001))
    assert (
        await h.shopify(body, "orders/paid", **{"X-Shopify-Webhook-Id": "w-1"})
    ).status_code == 200
    pf = dumps(printful_event("order_updated", 1001))
    assert (await h.printful(pf)).status_code == 200
    rows = await h.rows()
    assert [(r["source"], r["topic"], r["entity_key"]) for r in rows] == [
        ("shopify", "orders/paid", "order:1001"),
        ("printful", "order_updated", "order:1001"),
    ]
    assert rows[0]["delivery_id"] == "w-1"


async def _rejected(h, resp) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json() == {"error": "invalid signature"}
    assert await h.rows() == []


async def test_body_reserialised_is_rejected(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    original = dumps(stripe_event("charge.refunded", charge("pi_2")))
    header = stripe_header(original, t=h.clock.unix)
    reserialised = json.dumps(json.loads(original), indent=1).encode()
    await _rejected(h, await h.stripe(reserialised, header))
    s_original = dumps(shopify_order(5))
    s_header = shopify_header(s_original)
    await _rejected(
        h, await h.shopify(json.dumps(json.loads(s_original)).encode(), "orders/paid", s_header)
    )


async def test_wrong_secret_is_rejected(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("charge.refunded", charge("pi_3")))
    await _rejected(h, await h.stripe(body, stripe_header(body, "whsec_wrong", t=h.clock.unix)))
    await _rejected(h, await h.shopify(body, "orders/paid", shopify_header(body, "shpss_wrong")))
    await _rejected(h, await h.printful(body, printful_header(body, "pf_wrong")))
    assert (
        h.metric("autobiz_ingress_signature_failures_total", source="stripe", reason="mismatch")
        == 1
    )


async def test_missing_header_is_rejected(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("charge.refunded", charge("pi_4")))
    await _rejected(h, await h.stripe(body, None))
    await _rejected(h, await h.shopify(body, "orders/paid", None))
    await _rejected(h, await h.printful(body, None))  # Printful missing signature
    assert (
        h.metric("autobiz_ingress_events_total", source="printful", outcome="rejected_signature")
        == 1
    )


@pytest.mark.parametrize("offset", [-301, 3600])
async def test_stripe_timestamp_outside_window(make_ingress: HarnessFactory, offset: int) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("charge.refunded", charge("pi_5")))
    await _rejected(h, await h.stripe(body, stripe_header(body, t=h.clock.unix + offset)))
    assert (
        h.metric(
            "autobiz_ingress_signature_failures_total",
            source="stripe",
            reason="timestamp_out_of_window",
        )
        == 1
    )


async def test_stripe_only_v0_is_rejected(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("charge.refunded", charge("pi_6")))
    await _rejected(h, await h.stripe(body, stripe_header(body, t=h.clock.unix, scheme="v0")))


async def test_stripe_two_v1_one_valid_is_accepted(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("payment_intent.created", {"id": "pi_7", "metadata": {}}))
    good = stripe_header(body, t=h.clock.unix)
    header = good.replace(",v1=", ",v1=" + "f" * 64 + ",v1=")
    resp = await h.stripe(body, header)
    assert resp.status_code == 200 and len(await h.rows()) == 1


async def test_shopify_hex_instead_of_base64_is_rejected(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(shopify_order(8))
    hex_mac = printful_header(body, "shpss_test_ingress")  # the right HMAC, hex-encoded
    await _rejected(h, await h.shopify(body, "orders/paid", hex_mac))


async def test_shopify_rotation_accepts_previous_secret(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(shopify_order(9))
    resp = await h.shopify(body, "orders/paid", shopify_header(body, SHOPIFY_PREVIOUS))
    assert resp.status_code == 200 and len(await h.rows()) == 1


async def test_tenant_comes_from_the_secret_not_the_shop_header(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    other = await new_tenant(database)
    secrets = StaticWebhookSecrets(
        {
            tenant: tenant_config(tenant),
            other: tenant_config(
                other, shopify=[SecretStr("shpss_other_tenant")], stripe=[SecretStr("whsec_other")]
            ),
        }
    )
    h = await make_ingress(secrets=secrets)
    body = dumps(shopify_order(10))
    # Signed with `tenant`'s secret but claiming to be `other`'s shop: refused, nothing stored.
    resp = await h.shopify(
        body, "orders/paid", **{"X-Shopify-Shop-Domain": f"{other}.myshopify.com"}
    )
    assert resp.status_code == 401
    assert await h.rows(other) == [] and await h.rows(tenant) == []
    # Unknown shop domain: every tenant is a candidate, the verifying secret picks the tenant.
    resp = await h.shopify(body, "orders/paid", **{"X-Shopify-Shop-Domain": "nobody.myshopify.com"})
    assert resp.status_code == 200
    assert len(await h.rows(tenant)) == 1 and await h.rows(other) == []
    # Stripe has no hint at all: the secret that verifies decides.
    sbody = dumps(stripe_event("payment_intent.created", {"id": "pi_o", "metadata": {}}))
    resp = await h.stripe(sbody, stripe_header(sbody, "whsec_other", t=h.clock.unix))
    assert resp.status_code == 200
    assert [r["topic"] for r in await h.rows(other)] == ["payment_intent.created"]
