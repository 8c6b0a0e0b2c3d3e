"""Fuzz the webhook endpoints listed in the OpenAPI document: random bodies, headers
and query hints, signed or not. With the database up, nothing may answer 5xx."""

from __future__ import annotations

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
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
topics = st.sampled_from([
    "orders/paid", "orders/cancelled", "charge.refunded", "payment_intent.payment_failed",
    "package_shipped", "order_failed", "payment_intent.succeeded", "nonsense", "",
])  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
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
    assert {"/webhooks/stripe", "/webhooks/shopify", "/webhooks/printful", "/healthz",
            "/readyz", "/metrics"} <= set(doc["paths"])  # fmt: skip


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
