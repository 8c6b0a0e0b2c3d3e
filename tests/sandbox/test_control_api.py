"""The control API and the raw provider endpoints' own refusals."""

from __future__ import annotations

import httpx
import pytest

from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


async def test_reset_forgets_state_and_faults(sandbox: Sandbox) -> None:
    await sandbox.control.seed_shopify_order()
    await sandbox.control.fault("error", "/stripe/*", count=3)
    await sandbox.control.reset()
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers=sandbox.control.auth_headers
    ) as http:
        faults = (await http.get("/_control/faults")).json()
    assert faults == {"rules": []}
    assert await sandbox.control.stripe_payment_intents() == []


async def test_a_fault_fires_for_exactly_count_calls(sandbox: Sandbox) -> None:
    await sandbox.control.fault("error", "/sendgrid/v3/mail/send", status=503, count=2)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        statuses = [
            (await http.post("/sendgrid/v3/mail/send", json={})).status_code for _ in range(3)
        ]
    assert statuses == [503, 503, 401]  # third call reaches SendGrid's own auth check


async def test_invalid_control_payloads_are_422(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers=sandbox.control.auth_headers
    ) as http:
        bad = await http.post("/_control/faults", json={"kind": "meteor", "path": "/x"})
    assert bad.status_code == 422


async def test_webhook_target_must_be_allowlisted(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers=sandbox.control.auth_headers
    ) as http:
        refused = await http.post(
            "/_control/webhooks", json={"target_url": "https://hooks.example.net/x"}
        )
    assert refused.status_code == 400
    assert "allowlist" in refused.json()["error"]


async def test_provider_endpoints_check_credentials_and_versions(sandbox: Sandbox) -> None:
    token = sandbox.settings.shopify.access_token.get_secret_value()
    query = {
        "query": "query GetOrder($id: ID!) { order(id: $id) { id } }",
        "operationName": "GetOrder",
        "variables": {"id": "gid://shopify/Order/1"},
    }
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        no_auth = await http.post("/stripe/v1/payment_intents", data={"amount": "1"})
        wrong_token = await http.post("/shopify/admin/api/2026-01/graphql.json", json=query)
        bad_version = await http.post(
            "/shopify/admin/api/latest/graphql.json",
            json=query,
            headers={"X-Shopify-Access-Token": token},
        )
        unsupported = await http.post(
            "/shopify/admin/api/2026-01/graphql.json",
            json={**query, "operationName": "DeleteEverything"},
            headers={"X-Shopify-Access-Token": token},
        )
        ok = await http.post(
            "/shopify/admin/api/2026-01/graphql.json",
            json=query,
            headers={"X-Shopify-Access-Token": token},
        )
    assert no_auth.status_code == 401
    assert wrong_token.status_code == 401
    assert bad_version.status_code == 404
    assert unsupported.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED"
    body = ok.json()
    assert body["data"] == {"order": None}
    assert set(body["extensions"]["cost"]["throttleStatus"]) == {
        "maximumAvailable",
        "currentlyAvailable",
        "restoreRate",
    }


async def test_stripe_rate_limit_enforcement(sandbox: Sandbox) -> None:
    await sandbox.control.rate_limits(enabled=True, stripe_per_second=1)
    key = sandbox.settings.stripe.api_key.get_secret_value()
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        first = await http.get("/stripe/v1/events")
        second = await http.get("/stripe/v1/events")
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit"
    assert int(second.headers["retry-after"]) >= 1
