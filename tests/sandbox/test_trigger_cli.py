"""`autobiz sandbox trigger EVENT` as `stripe trigger` behaves: the running sandbox makes the
event happen through the provider's own operations and delivers the webhook, signed with
the tenant's secret, to the configured target."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from autobiz.cli import output
from autobiz.cli.main import _run
from autobiz.settings import get_settings
from ingress.inbound_email import parse_inbound
from ingress.signatures import verify_basic, verify_printful, verify_shopify, verify_stripe
from sandbox.accounts import SandboxAccount
from tests.support.sandbox import CONTROL_TOKEN, ReceivedRequest, Sandbox, WebhookSink

pytestmark = pytest.mark.integration


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """Run `autobiz ARGS --json` in-process: its exit code and JSON document (and its
    error's, as a fresh process would: the one-document guard starts empty)."""
    output._emitted.clear()
    try:
        _run([*args, "--json"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else captured.err


@pytest.fixture
async def tenant(
    sandbox: Sandbox, webhook_sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SandboxAccount]:
    monkeypatch.setenv("AUTOBIZ_SANDBOX__CONTROL_TOKEN", CONTROL_TOKEN)
    get_settings.cache_clear()
    account = await sandbox.host("t-trigger")
    host = webhook_sink.url.removeprefix("http://")
    parse = f"http://{account.sendgrid_parse_user}:{account.sendgrid_parse_password}@{host}"
    await sandbox.control.webhooks(
        target_url=webhook_sink.url, urls={"sendgrid_inbound": f"{parse}/sendgrid"}
    )
    yield account
    get_settings.cache_clear()


async def _trigger(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], event: str, *extra: str
) -> dict[str, Any]:
    args = ["sandbox", "trigger", event, "--tenant", "t-trigger", "--url", sandbox.url, *extra]
    code, result = await asyncio.to_thread(_cli, args, capsys)
    assert code == 0, result
    assert result["event"] == event and result["tenant"] == "t-trigger"
    return dict(result)


def _event(sink: WebhookSink, provider: str, match: Any) -> Any:
    async def wait() -> ReceivedRequest:
        found: list[ReceivedRequest] = []

        def arrived(received: list[ReceivedRequest]) -> bool:
            found[:] = [r for r in received if r.path.endswith(f"/{provider}") and match(r)]
            return bool(found)

        await sink.wait_for(arrived)
        return found[0]

    return wait()


@pytest.mark.parametrize(
    "event", ["payment_intent.payment_failed", "charge.refunded", "charge.dispute.created"]
)
async def test_stripe_events_arrive_signed_with_the_tenants_secret(
    event: str,
    sandbox: Sandbox,
    webhook_sink: WebhookSink,
    tenant: SandboxAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await _trigger(sandbox, capsys, event)
    got = await _event(webhook_sink, "stripe", lambda r: json.loads(r.body)["type"] == event)
    body = json.loads(got.body)
    obj = body["data"]["object"]
    assert obj["id" if event.startswith("payment_intent") else "payment_intent"] == result["object"]
    if event == "charge.refunded":
        assert obj["refunded"] is True
    elif event == "charge.dispute.created":
        assert obj["object"] == "dispute" and obj["status"] == "needs_response"
    else:
        assert obj["last_payment_error"]["code"] == "card_declined"
    secret = tenant.stripe_webhook_secret.encode()
    assert verify_stripe(got.body, got.headers["stripe-signature"], [secret], now=time.time()).ok
    assert not verify_stripe(
        got.body, got.headers["stripe-signature"], [b"whsec_other"], now=time.time()
    ).ok


@pytest.mark.parametrize("event", ["orders/paid", "orders/cancelled"])
async def test_shopify_events_arrive_signed_for_the_tenants_shop(
    event: str,
    sandbox: Sandbox,
    webhook_sink: WebhookSink,
    tenant: SandboxAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await _trigger(sandbox, capsys, event)
    got = await _event(webhook_sink, "shopify", lambda r: r.headers.get("x-shopify-topic") == event)
    assert result["object"].endswith(f"/{json.loads(got.body)['id']}")
    if event == "orders/cancelled":
        assert json.loads(got.body)["cancelled_at"]
    assert got.headers["x-shopify-shop-domain"] == tenant.shopify_shop_domain
    header = got.headers["x-shopify-hmac-sha256"]
    assert verify_shopify(got.body, header, [tenant.shopify_webhook_secret.encode()]).ok


@pytest.mark.parametrize("event", ["shipment_sent", "order_put_hold", "order_failed"])
async def test_printful_events_arrive_signed_with_the_stores_key(
    event: str,
    sandbox: Sandbox,
    webhook_sink: WebhookSink,
    tenant: SandboxAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await _trigger(sandbox, capsys, event)
    got = await _event(webhook_sink, "printful", lambda r: json.loads(r.body)["type"] == event)
    body = json.loads(got.body)
    assert body["store_id"] == int(tenant.printful_store_id)
    assert str(body["data"]["order"]["id"]) == result["object"]
    header = got.headers["x-pf-webhook-signature"]
    assert verify_printful(got.body, header, [tenant.printful_webhook_secret.encode()]).ok


async def test_order_acts_on_an_existing_printful_order_as_production_allows(
    sandbox: Sandbox,
    webhook_sink: WebhookSink,
    tenant: SandboxAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    held = await _trigger(sandbox, capsys, "order_put_hold")
    args = ["sandbox", "trigger", "order_failed", "--tenant", "t-trigger", "--url", sandbox.url]
    code, refused = await asyncio.to_thread(_cli, [*args, "--order", held["object"]], capsys)
    assert code == 2 and refused["error"]["code"] == "INPUT_INVALID"
    assert "onhold" in refused["error"]["message"]  # Printful does not fail a held order
    orders = await sandbox.control.printful_orders()
    assert [o["status"] for o in orders if str(o["id"]) == held["object"]] == ["onhold"]


async def test_an_inbound_email_arrives_with_the_parse_credential(
    sandbox: Sandbox,
    webhook_sink: WebhookSink,
    tenant: SandboxAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--from", "ada@example.com", "--subject", "Where is #1001?", "--text", "Shipped?"]
    result = await _trigger(sandbox, capsys, "inbound_email", *flags)
    got = await _event(webhook_sink, "sendgrid", lambda r: True)
    payload = parse_inbound(got.body, got.headers["content-type"])
    assert payload["message_id"] == result["object"]
    assert payload["subject"] == "Where is #1001?" and payload["text"] == "Shipped?"
    assert payload["envelope"]["from"] == "ada@example.com"
    credential = f"{tenant.sendgrid_parse_user}:{tenant.sendgrid_parse_password}".encode()
    assert verify_basic(got.headers["authorization"], [credential]).ok


async def test_an_unknown_event_is_a_usage_error_listing_the_supported_ones(
    sandbox: Sandbox, tenant: SandboxAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sandbox", "trigger", "customer.created", "--url", sandbox.url]
    code, result = await asyncio.to_thread(_cli, args, capsys)
    assert code == 2 and result["error"]["code"] == "USAGE"
    assert "payment_intent.payment_failed" in result["error"]["message"]
    assert "inbound_email" in result["error"]["message"]


async def test_an_unknown_tenant_is_refused(
    sandbox: Sandbox, tenant: SandboxAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sandbox", "trigger", "orders/paid", "--tenant", "nobody", "--url", sandbox.url]
    code, result = await asyncio.to_thread(_cli, args, capsys)
    assert code == 2 and result["error"]["code"] == "TENANT_UNKNOWN"


def test_a_sandbox_that_is_not_running_is_unavailable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["sandbox", "trigger", "orders/paid", "--url", "http://127.0.0.1:9"]
    code, result = _cli(args, capsys)
    assert code == 4 and result["error"]["code"] == "SANDBOX_UNREACHABLE"
