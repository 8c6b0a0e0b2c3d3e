"""PrintfulOrders against the sandbox over real HTTP."""

from __future__ import annotations

import uuid

import pytest

from autobiz.providers.errors import NotFound, ProviderUnavailable, RateLimited, StateConflict
from autobiz.providers.printful_client import OrderItem, PrintfulOrders, Recipient
from tests.support.sandbox import Sandbox, with_timeout

pytestmark = pytest.mark.integration

RECIPIENT = Recipient(
    name="Ada", address1="1 Main St", city="Springfield", country_code="US", zip="12345"
)
ITEMS = [OrderItem(catalog_variant_id=4012, quantity=2)]


@pytest.fixture
async def printful(sandbox: Sandbox):
    client = PrintfulOrders(sandbox.settings)
    yield client
    await client.aclose()


def order_key() -> str:
    return f"order:t1:{uuid.uuid4().hex[:12]}"


async def test_draft_confirm_ship_and_tracking(sandbox: Sandbox, printful: PrintfulOrders) -> None:
    ext = order_key()
    draft = await printful.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
    assert (draft.status, draft.external_id, draft.created) == ("draft", ext, True)
    confirmed = await printful.confirm_order(draft.id)
    assert confirmed.status == "pending"
    assert (await printful.confirm_order(draft.id)).status == "pending"  # safe to repeat
    assert await printful.shipments(draft.id) == []
    await sandbox.control.advance_printful(draft.id, "ship", tracking_number="TRACK123")
    [shipment] = await printful.shipments(f"@{ext}")
    assert (shipment.tracking_number, shipment.carrier) == ("TRACK123", "USPS")
    assert (await printful.find_by_external_id(ext)).status == "fulfilled"  # type: ignore[union-attr]


async def test_create_looks_up_the_external_id_first(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    ext = order_key()
    first = await printful.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
    second = await printful.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
    assert second.id == first.id and second.created is False
    assert len(await sandbox.control.printful_orders()) == 1


async def test_commit_then_drop_and_the_lookup_yields_one_order(sandbox: Sandbox) -> None:
    fast = PrintfulOrders(with_timeout(sandbox.settings, 0.5))
    try:
        await sandbox.control.fault(
            "commit_then_drop", "/printful/v2/orders", method="POST", hang_seconds=5
        )
        ext = order_key()
        with pytest.raises(ProviderUnavailable):
            await fast.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
        retried = await fast.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
        assert retried.created is False
        orders = await sandbox.control.printful_orders()
        assert [o["id"] for o in orders] == [retried.id]
    finally:
        await fast.aclose()


async def test_cancel_only_before_production(sandbox: Sandbox, printful: PrintfulOrders) -> None:
    early = await printful.create_order(external_id=order_key(), recipient=RECIPIENT, items=ITEMS)
    await printful.confirm_order(early.id)
    assert (await printful.cancel_order(early.id)).status == "canceled"

    late = await printful.create_order(external_id=order_key(), recipient=RECIPIENT, items=ITEMS)
    await printful.confirm_order(late.id)
    await sandbox.control.advance_printful(late.id, "start")
    with pytest.raises(StateConflict) as exc:
        await printful.cancel_order(late.id)
    assert exc.value.retryable is False


async def test_failed_and_on_hold_orders(sandbox: Sandbox, printful: PrintfulOrders) -> None:
    held = await printful.create_order(external_id=order_key(), recipient=RECIPIENT, items=ITEMS)
    await printful.confirm_order(held.id)
    await sandbox.control.advance_printful(held.id, "hold", reason="address check")
    assert (await printful.get_order(held.id)).status == "onhold"
    failed = await printful.create_order(external_id=order_key(), recipient=RECIPIENT, items=ITEMS)
    await sandbox.control.advance_printful(failed.id, "fail", reason="bad artwork")
    assert (await printful.get_order(failed.id)).status == "failed"
    assert (await printful.cancel_order(failed.id)).status == "canceled"


async def test_failure_mapping(sandbox: Sandbox, printful: PrintfulOrders) -> None:
    with pytest.raises(NotFound):
        await printful.get_order(999)
    await sandbox.control.fault("error", "/printful/*", status=500)
    with pytest.raises(ProviderUnavailable):
        await printful.get_order(999)
    await sandbox.control.rate_limits(enabled=True, printful_per_minute=1)
    await printful.find_by_external_id("nothing-here")  # uses the one request of the minute
    with pytest.raises(RateLimited) as limited:
        await printful.get_order(1)
    assert limited.value.retryable and limited.value.retry_after is not None
