"""The sandbox's Stripe objects carry every top-level field of Stripe's published fixtures."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration

FIXTURES = json.loads((Path(__file__).parent / "data" / "stripe_fixtures.json").read_text())[
    "resources"
]


async def _raw(
    http: httpx.AsyncClient, method: str, path: str, data: dict[str, str] | None = None
) -> Any:
    response = await http.request(
        method, path, data=data, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture
async def stripe_objects(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    api_key = sandbox.settings.stripe.api_key.get_secret_value()
    async with httpx.AsyncClient(
        base_url=sandbox.settings.stripe.api_base, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        pi = await _raw(
            http,
            "POST",
            "/v1/payment_intents",
            {
                "amount": "1000",
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
        )
        refund = await _raw(
            http, "POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": "400"}
        )
        charge = await _raw(http, "GET", f"/v1/charges/{pi['latest_charge']}")
        events = await _raw(http, "GET", "/v1/events")
    return {"payment_intent": pi, "charge": charge, "refund": refund, "event": events["data"][0]}


@pytest.mark.parametrize("resource", ["payment_intent", "charge", "refund", "event"])
async def test_top_level_fields_match_the_fixture(
    stripe_objects: dict[str, dict[str, Any]], resource: str
) -> None:
    expected = set(FIXTURES[resource])
    actual = set(stripe_objects[resource])
    assert expected <= actual, f"missing fields: {sorted(expected - actual)}"
    assert stripe_objects[resource]["object"] == FIXTURES[resource]["object"]
    assert stripe_objects[resource].get("livemode", False) is False


async def test_event_payload_is_the_object_shape(stripe_objects: dict[str, dict[str, Any]]) -> None:
    event = stripe_objects["event"]
    assert set(FIXTURES["event"]["request"]) <= set(event["request"])
    assert event["data"]["object"]["object"] in {"charge", "refund", "payment_intent"}
