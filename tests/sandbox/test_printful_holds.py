"""Printful's holds and failures in the sandbox, as Printful publishes v2: a held order's
address fixed by ``PATCH /v2/orders/{id}`` is released (``order_remove_hold``), a failed
one is re-submitted by confirming it again, an order in production is not modified."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from autobiz.providers.errors import InvalidRequest
from autobiz.providers.printful_client import OrderItem, PrintfulOrders, Recipient
from tests.sandbox.test_printful_conformance import (
    ORDER,
    _raw,
    assert_conforms,
    problems,
    webhook_schema,
)
from tests.support.sandbox import Sandbox, WebhookSink

pytestmark = pytest.mark.integration

OLD = Recipient(name="Ada", address1="1 Main St", city="Springfield", country_code="US", zip="1")
NEW = OLD.model_copy(update={"address1": "12 Main Street", "zip": "62701"})
ITEMS = [OrderItem(catalog_variant_id=4012, quantity=1)]


@pytest.fixture
async def printful(sandbox: Sandbox) -> AsyncIterator[PrintfulOrders]:
    client = PrintfulOrders(sandbox.settings)
    try:
        yield client
    finally:
        await client.aclose()


async def _confirmed(client: PrintfulOrders, external_id: str) -> int:
    order = await client.create_order(external_id=external_id, recipient=OLD, items=ITEMS)
    await client.confirm_order(order.id)
    return order.id


def _printful_events(sink: WebhookSink, order_id: int) -> list[dict[str, Any]]:
    events = [json.loads(r.body) for r in sink.for_provider("printful")]
    return [e for e in events if e["data"].get("order", {}).get("id") == order_id]


async def test_an_address_fix_releases_a_hold_for_the_address(
    sandbox: Sandbox, printful: PrintfulOrders, webhook_sink: WebhookSink
) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    pf_id = await _confirmed(printful, "hold-addr")
    held = await sandbox.control.advance_printful(
        pf_id, "hold", reason="Address verification failed", problem="address"
    )
    assert held["status"] == "onhold"
    fixed = await printful.update_order(pf_id, recipient=NEW)
    assert fixed.status == "pending"
    assert fixed.recipient is not None and fixed.recipient["address1"] == "12 Main Street"
    # Printful keeps the order moving: it ships.
    await sandbox.control.advance_printful(pf_id, "ship", tracking_number="TRK-H1")
    assert (await printful.get_order(pf_id)).status == "fulfilled"

    def released(_: Any) -> bool:
        return any(e["type"] == "order_remove_hold" for e in _printful_events(webhook_sink, pf_id))

    await webhook_sink.wait_for(released)
    events = _printful_events(webhook_sink, pf_id)
    types = [e["type"] for e in events]
    assert types.index("order_put_hold") < types.index("order_remove_hold")
    for event in events:
        if event["type"] in {"order_put_hold", "order_remove_hold", "order_updated"}:
            assert not problems(webhook_schema(event["type"]), event), event
    hold = next(e for e in events if e["type"] == "order_put_hold")
    assert hold["data"]["reason"] == "Address verification failed"


async def test_a_hold_for_another_reason_stays_held_after_an_update(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    pf_id = await _confirmed(printful, "hold-file")
    await sandbox.control.advance_printful(pf_id, "hold", reason="Print file too small")
    assert (await printful.update_order(pf_id, recipient=NEW)).status == "onhold"


async def test_a_failed_order_is_fixed_then_resubmitted(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    pf_id = await _confirmed(printful, "fail-addr")
    await sandbox.control.advance_printful(pf_id, "fail", reason="Invalid address")
    assert (await printful.update_order(pf_id, recipient=NEW)).status == "failed"
    assert (await printful.confirm_order(pf_id)).status == "pending"


async def test_patch_answers_conform_and_production_is_not_modified(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    pf_id = await _confirmed(printful, "patch-conf")
    await sandbox.control.advance_printful(pf_id, "start")
    with pytest.raises(InvalidRequest):
        await printful.update_order(pf_id, recipient=NEW)
    async with _raw(sandbox) as pf:
        draft = (
            await pf.post(
                "/v2/orders",
                json={
                    "external_id": "patch-draft",
                    "recipient": OLD.model_dump(exclude_none=True),
                    "order_items": [i.model_dump(exclude_none=True) for i in ITEMS],
                },
            )
        ).json()["data"]["id"]
        patched = await pf.patch(
            f"/v2/orders/{draft}", json={"recipient": NEW.model_dump(exclude_none=True)}
        )
        assert patched.status_code == 200
        assert_conforms(patched, ORDER, "patch")
        refused = await pf.patch(f"/v2/orders/{pf_id}", json={"recipient": {"name": "x"}})
        assert refused.status_code == 400
        assert_conforms(refused, ORDER, "patch")


async def test_a_held_order_is_cancelled_with_v1_not_deleted_with_v2(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    """Printful's v2 DELETE deletes only drafts and failed orders; the client cancels a
    confirmed (pending or held) order with v1 ``DELETE /orders/{id}``."""
    pf_id = await _confirmed(printful, "hold-cancel")
    await sandbox.control.advance_printful(pf_id, "hold", reason="Print file too small")
    async with _raw(sandbox) as pf:
        refused = await pf.delete(f"/v2/orders/{pf_id}")
    assert refused.status_code == 409
    assert_conforms(refused, ORDER, "delete")
    assert (await printful.cancel_order(pf_id)).status == "canceled"
    assert (await printful.get_order(pf_id)).status == "canceled"
    assert (await printful.cancel_order(pf_id)).status == "canceled"  # safe to repeat
