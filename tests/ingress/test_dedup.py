"""Deduplication and dead letters: a redelivery is a no-op that still answers 2xx."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.ingress.conftest import HarnessFactory, serve_http
from tests.ingress.support import (
    RecordingHandoff,
    dumps,
    printful_event,
    printful_header,
    shopify_header,
    shopify_order,
    stripe_event,
    stripe_header,
)

pytestmark = pytest.mark.integration


async def test_same_delivery_twice_one_row(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(stripe_event("payment_intent.payment_failed", {"id": "pi_d", "metadata": {}}))
    first, second = await h.stripe(body), await h.stripe(body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == "pending" and second.json()["status"] == "duplicate"
    assert len(await h.rows()) == 1


async def test_duplicate_found_by_the_database_when_not_in_memory(
    make_ingress: HarnessFactory,
) -> None:
    h = await make_ingress()
    body = dumps(shopify_order(77))
    assert (await h.shopify(body, "orders/paid")).json()["status"] == "pending"
    h.runtime.store.recent = type(h.runtime.store.recent)()  # a fresh process: empty memory
    # Same body with a fresh (unsigned) webhook id: still the same event.
    resp = await h.shopify(body, "orders/paid", **{"X-Shopify-Webhook-Id": "another"})
    assert resp.json()["status"] == "duplicate" and len(await h.rows()) == 1


async def test_printful_retry_counter_does_not_defeat_dedup(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    await h.printful(dumps(printful_event("order_updated", 5, retries=0)))
    resp = await h.printful(dumps(printful_event("order_updated", 5, retries=1)))
    assert resp.json()["status"] == "duplicate" and len(await h.rows()) == 1


async def test_twenty_concurrent_copies_over_http(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    body = dumps(shopify_order(4242))
    headers = {
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Hmac-Sha256": shopify_header(body),
        "X-Shopify-Shop-Domain": f"{h.tenant}.myshopify.com",
    }
    async with serve_http(h.app) as url, httpx.AsyncClient(base_url=url) as http:
        responses = await asyncio.gather(
            *(http.post("/webhooks/shopify", content=body, headers=headers) for _ in range(20))
        )
    assert [r.status_code for r in responses] == [200] * 20
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 19 + ["pending"]
    assert len(await h.rows()) == 1
    await asyncio.gather(h.relay.run_once(), h.relay.run_once())
    await h.relay.run_once()
    assert [e.topic for e in handoff.delivered] == ["orders/paid"]  # one workflow start


async def test_signed_malformed_json_is_dead_lettered(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = b'{"id": "evt_x", "type": '
    resp = await h.stripe(body, stripe_header(body, t=h.clock.unix))
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    [row] = await h.rows()
    assert row["status"] == "dead_letter" and row["status_reason"] == "malformed_json"
    assert row["payload"] == {
        "raw_base64": base64.b64encode(body).decode(),
        "raw_text": body.decode(),
    }
    # Redelivered: stored once, never retried.
    assert (await h.stripe(body, stripe_header(body, t=h.clock.unix))).json()[
        "status"
    ] == "duplicate"
    report = await h.relay.run_once()
    assert report.handed_over == 0 and h.handoff.attempts == 0


async def test_signed_body_with_nul_bytes_is_dead_lettered_not_a_500(
    make_ingress: HarnessFactory,
) -> None:
    """PostgreSQL text cannot hold NUL: found by the fuzz test, kept as a regression."""
    h = await make_ingress()
    body = b'\x00{"id": "evt_nul"'
    resp = await h.stripe(body, stripe_header(body, t=h.clock.unix))
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    [row] = await h.rows()
    assert row["status"] == "dead_letter"
    assert "\x00" not in row["payload"]["raw_text"]
    assert base64.b64decode(row["payload"]["raw_base64"]) == body


async def test_unknown_topic_and_contradicting_topic_are_dead_lettered(
    make_ingress: HarnessFactory,
) -> None:
    h = await make_ingress()
    stripe_body = dumps(stripe_event("customer.created", {"id": "cus_1"}))
    assert (await h.stripe(stripe_body)).json()["status"] == "dead_letter"
    pf = dumps(printful_event("mystery_event", 3))
    assert (await h.printful(pf, printful_header(pf))).json()["status"] == "dead_letter"
    # An orders/paid body replayed under the orders/cancelled topic header.
    order = dumps(shopify_order(3))
    assert (await h.shopify(order, "orders/cancelled")).json()["status"] == "dead_letter"
    reasons = [r["status_reason"] for r in await h.rows()]
    assert reasons[0] == "unknown_topic: customer.created"
    assert reasons[1] == "unknown_topic: mystery_event"
    assert reasons[2].startswith("topic_body_mismatch")


async def test_nul_and_lone_surrogates_are_dead_lettered_with_their_bytes(
    make_ingress: HarnessFactory,
) -> None:
    """jsonb holds neither: the body is kept as it was signed (base64), not rewritten."""
    h = await make_ingress()
    body = (
        b'{"id":"evt_nul","type":"payment_intent.created",'
        b'"data":{"object":{"id":"pi_\\u0000","x":"\\ud800"}}}'
    )
    resp = await h.stripe(body, stripe_header(body, t=h.clock.unix))
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    [row] = await h.rows()
    assert row["status_reason"] == "unstorable_json: string with NUL or lone surrogate"
    assert base64.b64decode(row["payload"]["raw_base64"]) == body
