"""Fuzz the webhook endpoints listed in the OpenAPI document: random bodies, headers
and query hints, signed or not. With the database up, nothing may answer 5xx, and every
signed body is stored (its bytes recoverable when it is a dead letter).

The bodies include what ``json.dumps`` never writes but a provider's bytes may hold:
number literals beyond a double (``1e400``), NaN/Infinity, integers beyond int64, lone
surrogates and NUL in strings, and deep nesting (issue 10: ``1e400`` was a 500)."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingress.conftest import Harness, HarnessFactory
from tests.ingress.support import printful_header, shopify_header, stripe_header

pytestmark = pytest.mark.integration

header_text = st.text(alphabet=string.printable.strip() + " ", max_size=80)
# Surrogates included: json.dumps escapes a lone one as \\udxxx, which jsonb refuses.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
topics = st.sampled_from(
    [
        "orders/paid",
        "orders/cancelled",
        "charge.refunded",
        "payment_intent.payment_failed",
        "package_shipped",
        "order_failed",
        "payment_intent.succeeded",
        "nonsense",
        "",
    ]
)


# Literal JSON tokens no encoder writes; spliced into otherwise valid events.
raw_tokens = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "1E+999",
        "1e-400",
        "NaN",
        "Infinity",
        "-Infinity",
        "9" * 19,
        "9" * 30,
        "-" + "9" * 25,
        "9" * 5000,
        '"\\ud800"',
        '"\\udfff\\ud800"',
        '"a\\u0000"',
        '"\\ud83d\\ude00"',
        "1.7976931348623157e308",
        "-0",
        "0.0e0",
    ]
) | st.integers(min_value=1, max_value=1500).map(lambda n: "[" * n + "]" * n)


@st.composite
def edge_events(draw: st.DrawFn) -> bytes:
    """A well-formed event whose ``data.object`` holds one raw edge token."""
    key = draw(st.sampled_from(["amount", "id", "\\ud800", "metadata"]))
    token = draw(raw_tokens)
    topic = json.dumps(draw(topics))
    return (
        f'{{"id":"evt_{draw(st.integers(0, 10**6))}","type":{topic},'
        f'"data":{{"object":{{"id":"pi_1","{key}":{token}}}}}}}'
    ).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "event", "edge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "edge":
        return draw(edge_events())
    event: dict[str, Any] = {
        "id": draw(st.text(max_size=12) | st.integers()),
        "type": draw(topics),
        "data": {"object": draw(json_values), "order": draw(json_values)},
    }
    if draw(st.booleans()):
        event["metadata"] = {"order_id": draw(st.text(max_size=8))}
    return json.dumps(event).encode()


def sign(h: Harness, path: str, body: bytes) -> dict[str, str]:
    if path.endswith("stripe"):
        return {"Stripe-Signature": stripe_header(body, t=h.clock.unix)}
    if path.endswith("shopify"):
        return {"X-Shopify-Hmac-Sha256": shopify_header(body)}
    return {"x-pf-webhook-signature": printful_header(body)}


async def test_openapi_document_lists_the_endpoints(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    doc = (await h.http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/webhooks/stripe",
        "/webhooks/shopify",
        "/webhooks/printful",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(doc["paths"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_5xx_while_the_database_is_up(
    make_ingress: HarnessFactory, data: st.DataObject
) -> None:
    h = await make_ingress()
    spec = (await h.http.get("/openapi.json")).json()
    path = data.draw(
        st.sampled_from(sorted(p for p in spec["paths"] if p.startswith("/webhooks/")))
    )
    params = spec["paths"][path]["post"]["parameters"]
    body = data.draw(bodies())
    headers: dict[str, str] = {}
    for p in params:
        if p["in"] == "header" and data.draw(st.booleans()):
            headers[p["name"]] = data.draw(header_text)
    if "X-Shopify-Topic" in {p["name"] for p in params} and data.draw(st.booleans()):
        headers["X-Shopify-Topic"] = data.draw(topics)
    if data.draw(st.booleans()):
        headers.update(sign(h, path, body))
    query = {"tenant": data.draw(header_text)} if data.draw(st.booleans()) else {}
    resp = await h.http.post(path, content=body, headers=headers, params=query)
    assert resp.status_code in (200, 400, 401, 411, 413, 415), (resp.status_code, resp.text)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies(), path=st.sampled_from(["/webhooks/stripe", "/webhooks/printful"]))
async def test_every_signed_body_is_stored_and_its_bytes_kept(
    make_ingress: HarnessFactory, body: bytes, path: str
) -> None:
    """A correctly signed body is never refused (the provider would retry it forever):
    200, one row for its hash, and a dead letter keeps the exact bytes."""
    h = await make_ingress()
    resp = await h.http.post(path, content=body, headers=sign(h, path, body))
    assert resp.status_code == 200, (resp.status_code, resp.text, body[:200])
    if resp.json()["status"] == "duplicate":  # an earlier example had this event's id
        return
    digest = hashlib.sha256(body).hexdigest()
    rows = [r for r in await h.rows() if r["payload_sha256"] == digest]
    assert rows, "a signed body left no row"
    for row in rows:
        if row["status"] == "dead_letter" and "raw_base64" in row["payload"]:
            assert base64.b64decode(row["payload"]["raw_base64"]) == body
