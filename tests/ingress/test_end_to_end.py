"""Orders entering the way production's do: the sandbox's providers send signed webhooks
over real HTTP to a real ingress, whose relay hands them to Temporal, where the worker
runs the order to the end. With the sandbox reordering and duplicating deliveries the
outcome must be the same: one run, one capture, one Printful order, one fulfilment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from autobiz.db.database import Database
from ingress.app import IngressDeps, create_app
from ingress.handoff import TemporalHandoff
from tests.ingress.conftest import serve_http
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workflows.support import Harness, harness  # noqa: F401
from workflows.ids import order_workflow_id
from workflows.orders.models import OrderFulfillResult

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def live_ingress(h: Harness, database: Database) -> AsyncIterator[str]:
    """The ingress for ``h``'s tenant, served on loopback, its relay polling; yields the
    webhook base URL the sandbox should deliver to."""
    secrets = h.sandbox.webhook_secrets(h.tenant)
    app = create_app(
        IngressDeps(db=database, secrets=secrets, handoff=TemporalHandoff(h.client, h.task_queue))
    )
    relay = app.state.ingress.relay
    assert relay is not None

    async def pump() -> None:
        while True:
            await relay.run_once()
            await asyncio.sleep(0.2)

    async with serve_http(app) as url:
        task = asyncio.create_task(pump())
        try:
            yield f"{url}/webhooks"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def delivering_webhooks(h: Harness, database: Database) -> AsyncIterator[None]:
    """:func:`live_ingress`, the sandbox's providers delivering their webhooks to it."""
    async with live_ingress(h, database) as target:
        await h.sandbox.control.webhooks(target_url=target)
        yield


async def _order_through_webhooks(h: Harness, *, flush: bool) -> tuple[str, OrderFulfillResult]:
    pi = await h.authorize(4200, "checkout")
    seeded = await h.sandbox.control.seed_shopify_order(
        shop=h.clients.shop_domain,
        financial_status="authorized",
        payment_intent=pi,
        line_items=[{"title": "Tee", "quantity": 2, "price": "21.00", "sku": "PF-4012"}],
    )
    order_id = str(seeded["legacy_id"])
    # The checkout names the order on the intent it authorised (as the demo's does).
    await h.clients.stripe.set_order_key(
        pi, f"{h.tenant}:{order_id}", idempotency_key=f"bind-{order_id}"
    )
    workflow_id = order_workflow_id(h.tenant, order_id)

    async def pending_flush() -> None:
        # Reordering holds one delivery back until the next; a late provider
        # delivery is simulated by releasing it while the test waits.
        while flush:
            await h.sandbox.control.flush_webhooks()
            await asyncio.sleep(0.5)

    flusher = asyncio.create_task(pending_flush())
    try:
        status = await h.status_when(workflow_id, lambda s: s.state == "in_production", within=60)
        printful_id = status.detail["printful_order_id"]
        await h.sandbox.control.advance_printful(printful_id, "ship", carrier="UPS")
        handle = h.client.get_workflow_handle(workflow_id, result_type=OrderFulfillResult)
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
    return pi, result


async def _event_rows(database: Database, tenant: str) -> list[dict[str, Any]]:
    async with database.tenant(tenant) as s:
        return await s.fetch_all("SELECT source, topic, status FROM event_store ORDER BY event_id")


async def _assert_one_of_everything(h: Harness, pi: str, result: OrderFulfillResult) -> None:
    assert result.state == "completed"
    assert result.captured_minor == 4200 and result.tracking_number
    pis = {p["id"]: p for p in await h.sandbox.control.stripe_payment_intents()}
    assert pis[pi]["status"] == "succeeded" and pis[pi]["amount_received"] == 4200
    ours = [
        o for o in await h.sandbox.control.printful_orders() if o["id"] == result.printful_order_id
    ]
    assert len(ours) == 1 and ours[0]["status"] == "fulfilled"
    shipped = [
        m
        for m in await h.sandbox.control.outbox()
        if m["request"]["template_id"] == "d-autobiz-shipping-confirmation"
    ]
    assert len(shipped) == 1
    receipts = await h.receipts(result.workflow_id)
    tools = sorted(r.tool for r in receipts)
    assert tools.count("stripe.capture_payment") == 1
    assert tools.count("printful.create_order") == 1
    assert tools.count("shopify.create_fulfillment") == 1


async def test_order_enters_by_signed_webhook_and_ships(
    harness: Harness,  # noqa: F811
    database: Database,
) -> None:
    h = harness
    async with live_ingress(h, database) as target:
        await h.sandbox.control.webhooks(target_url=target)
        pi, result = await _order_through_webhooks(h, flush=False)
    await _assert_one_of_everything(h, pi, result)
    rows = await _event_rows(database, h.tenant)
    started = [r for r in rows if (r["source"], r["topic"]) == ("shopify", "orders/create")]
    assert [r["status"] for r in started] == ["handed_over"]
    shipped = [r for r in rows if r["topic"] == "shipment_sent"]
    assert [r["status"] for r in shipped] == ["handed_over"]


async def test_reordered_and_duplicated_deliveries_give_the_same_outcome(
    harness: Harness,  # noqa: F811
    database: Database,
) -> None:
    h = harness
    async with live_ingress(h, database) as target:
        await h.sandbox.control.webhooks(target_url=target, reorder=True, duplicates=True)
        pi, result = await _order_through_webhooks(h, flush=True)
        await h.sandbox.control.flush_webhooks()
    await _assert_one_of_everything(h, pi, result)
    rows = await _event_rows(database, h.tenant)
    # Every duplicate delivery collapsed into one stored event per provider event.
    started = [r for r in rows if r["topic"] == "orders/create"]
    assert len(started) == 1 and started[0]["status"] == "handed_over"
    deliveries = await h.sandbox.control.deliveries()
    assert sum(1 for d in deliveries if d["topic"] == "orders/create") >= 2
