"""Signed bodies PostgreSQL's jsonb cannot hold exactly (issue 10): ``1e400``, NaN,
integers outside int64, NUL / lone surrogates, deep nesting. Each one used to be a 500
(the provider retries a 500 forever) or was silently rewritten; each is now a dead letter
answered 200, with every byte of the body kept."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

import ingress.events
from tests.ingress.conftest import HarnessFactory, serve_http
from tests.ingress.support import shopify_header, stripe_header

pytestmark = pytest.mark.integration

PREFIX = b'{"id":"evt_edge","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}},'


def _deep(levels: int) -> bytes:
    return PREFIX + b'"x":' + b"[" * levels + b"]" * levels + b"}"


EDGES = {
    "1e400": (PREFIX + b'"amount":1e400}', "unstorable_json: number out of range"),
    "-1e400": (PREFIX + b'"amount":-1e400}', "unstorable_json: number out of range"),
    "NaN": (PREFIX + b'"amount":NaN}', "non-JSON number NaN"),
    "Infinity": (PREFIX + b'"amount":Infinity}', "non-JSON number Infinity"),
    "int above int64": (
        PREFIX + b'"amount":9223372036854775808}',
        "unstorable_json: integer out of int64 range",
    ),
    "5000 digits": (PREFIX + b'"amount":' + b"9" * 5000 + b"}", "malformed_json"),
    "lone surrogate": (
        PREFIX + b'"note":"\\ud800"}',
        "unstorable_json: string with NUL or lone surrogate",
    ),
    "lone surrogate key": (
        PREFIX + b'"\\udfff":1}',
        "unstorable_json: string with NUL or lone surrogate",
    ),
    "nested 65": (_deep(65), "unstorable_json: nested deeper than 64"),
    "nested 900": (_deep(900), "unstorable_json: nested deeper than 64"),
    "nested 100000": (_deep(100_000), "malformed_json"),
}


@pytest.mark.parametrize("name", list(EDGES))
async def test_signed_unstorable_body_is_dead_lettered_with_200(
    make_ingress: HarnessFactory, name: str
) -> None:
    body, reason = EDGES[name]
    h = await make_ingress()
    resp = await h.stripe(body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "dead_letter"
    [row] = await h.rows()
    assert (row["status"], row["status_reason"]) == ("dead_letter", reason)
    assert row["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert base64.b64decode(row["payload"]["raw_base64"]) == body  # nothing lost
    # The provider's redelivery is a duplicate, and nothing is handed to a workflow.
    assert (await h.stripe(body)).json()["status"] == "duplicate"
    assert (await h.relay.run_once()).handed_over == 0 and h.handoff.attempts == 0


async def test_1e400_over_real_http_on_every_source(make_ingress: HarnessFactory) -> None:
    """The finding as a provider sees it: uvicorn, a socket, a 200 (not a 500)."""
    h = await make_ingress()
    body = PREFIX + b'"amount":1e400}'
    async with serve_http(h.app) as url, httpx.AsyncClient(base_url=url) as http:
        stripe = await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": stripe_header(body, t=h.clock.unix)},
        )
        shopify = await http.post(
            "/webhooks/shopify",
            content=body,
            headers={
                "X-Shopify-Hmac-Sha256": shopify_header(body),
                "X-Shopify-Topic": "orders/paid",
                "X-Shopify-Shop-Domain": f"{h.tenant}.myshopify.com",
            },
        )
    assert (stripe.status_code, shopify.status_code) == (200, 200)
    assert {r["status"] for r in await h.rows()} == {"dead_letter"}
    assert len(await h.rows()) == 2


async def test_a_value_the_database_refuses_is_still_a_dead_letter(
    make_ingress: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were a check missing, PostgreSQL's refusal (a DataError) stores
    the raw body as a dead letter instead of answering 500."""
    monkeypatch.setattr(ingress.events, "check_storable", lambda value: None)
    h = await make_ingress()
    body = PREFIX + b'"amount":1e400}'
    resp = await h.stripe(body)
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    [row] = await h.rows()
    assert row["status_reason"].startswith("unstorable_json: ")
    assert row["provider_event_id"] == f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert base64.b64decode(row["payload"]["raw_base64"]) == body
