"""PrintfulOrders against the sandbox over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from autobiz.providers.errors import (
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    StateConflict,
)
from autobiz.providers.printful_client import OrderItem, PrintfulOrders, Recipient, error_message
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
    # Printful's shipment listing has no tracking number (the shipment_sent webhook does).
    assert (shipment.tracking_number, shipment.carrier) == (None, "USPS")
    assert shipment.tracking_url and shipment.tracking_url.endswith("TRACK123")
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


# -- as Printful publishes v2: answers the sandbox gives, and a scripted Printful ----------


def _raw(sandbox: Sandbox) -> httpx.AsyncClient:
    cfg = sandbox.settings.printful
    return httpx.AsyncClient(
        base_url=cfg.api_base,
        headers={"Authorization": f"Bearer {cfg.api_token.get_secret_value()}"},
    )


async def test_delete_answers_204_and_cancel_returns_the_cancelled_order(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    ext = order_key()
    draft = await printful.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
    await printful.confirm_order(draft.id)
    cancelled = await printful.cancel_order(draft.id)
    assert (cancelled.id, cancelled.external_id, cancelled.status) == (draft.id, ext, "canceled")
    assert cancelled.costs["total"] == draft.costs["total"]  # what the activity reports
    assert (await printful.get_order(draft.id)).status == "canceled"
    assert (await printful.cancel_order(f"@{ext}")).status == "canceled"  # safe to repeat
    async with _raw(sandbox) as raw:
        again = await raw.delete(f"/v2/orders/{draft.id}")
    assert (again.status_code, again.content) == (204, b"")


async def test_duplicates_answer_400_and_count_as_done(
    sandbox: Sandbox, printful: PrintfulOrders
) -> None:
    ext = order_key()
    draft = await printful.create_order(external_id=ext, recipient=RECIPIENT, items=ITEMS)
    body = {
        "external_id": ext,
        "recipient": RECIPIENT.model_dump(exclude_none=True),
        "order_items": [i.model_dump(exclude_none=True) for i in ITEMS],
    }
    async with _raw(sandbox) as raw:
        dup = await raw.post("/v2/orders", json=body)
        await raw.post(f"/v2/orders/{draft.id}/confirmation")
        second = await raw.post(f"/v2/orders/{draft.id}/confirmation")
    assert dup.status_code == 400 and dup.json()["error"]["message"]
    assert second.status_code == 400 and set(second.json()) == {"code", "result", "error"}
    assert (await printful.confirm_order(draft.id)).status == "pending"


def _scripted(handler: Any, sandbox: Sandbox) -> PrintfulOrders:
    return PrintfulOrders(
        sandbox.settings, http=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )


def _error(status: int, reason: str, message: str) -> httpx.Response:
    body = {"code": status, "result": message, "error": {"reason": reason, "message": message}}
    return httpx.Response(status, json=body)


ORDER = {"id": 7, "external_id": "k-1", "status": "draft", "costs": {}}


async def test_a_lost_create_race_answered_400_returns_the_winner(sandbox: Sandbox) -> None:
    lookups: list[str] = []

    def printful_api(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            lookups.append(request.url.path)
            if len(lookups) == 1:
                return _error(404, "NotFound", "Not found")
            return httpx.Response(200, json={"data": ORDER})
        return _error(400, "BadRequest", "Order with this external_id already exists")

    client = _scripted(printful_api, sandbox)
    order = await client.create_order(external_id="k-1", recipient=RECIPIENT, items=ITEMS)
    assert (order.id, order.created) == (7, False) and lookups == ["/printful/v2/orders/@k-1"] * 2


async def test_a_400_that_is_not_a_duplicate_is_raised_with_printfuls_message(
    sandbox: Sandbox,
) -> None:
    def printful_api(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return _error(404, "NotFound", "Not found")
        return _error(400, "BadRequest", "Missing required parameters")

    client = _scripted(printful_api, sandbox)
    with pytest.raises(InvalidRequest) as exc:
        await client.create_order(external_id="k-2", recipient=RECIPIENT, items=ITEMS)
    assert not isinstance(exc.value, StateConflict)
    assert "Missing required parameters" in str(exc.value)
    assert exc.value.provider_code == "BadRequest" and exc.value.http_status == 400


async def test_confirm_answered_400_on_a_confirmed_order_is_done(sandbox: Sandbox) -> None:
    def printful_api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _error(400, "BadRequest", "Order is already confirmed")
        return httpx.Response(200, json={"data": {**ORDER, "status": "pending"}})

    assert (await _scripted(printful_api, sandbox).confirm_order(7)).status == "pending"


async def test_confirm_answered_400_on_a_draft_is_raised(sandbox: Sandbox) -> None:
    def printful_api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _error(400, "BadRequest", "Order has no items")
        return httpx.Response(200, json={"data": ORDER})

    with pytest.raises(InvalidRequest, match="no items"):
        await _scripted(printful_api, sandbox).confirm_order(7)


async def test_cancel_on_a_204_with_no_body(sandbox: Sandbox) -> None:
    calls: list[str] = []

    def printful_api(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"data": {**ORDER, "status": "pending"}})

    order = await _scripted(printful_api, sandbox).cancel_order(7)
    assert (order.id, order.status, calls) == (7, "canceled", ["GET", "DELETE"])


async def test_conflict_on_delete_is_a_state_conflict(sandbox: Sandbox) -> None:
    def printful_api(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return _error(409, "409", "Order is in production")  # the spec: reason integer
        return httpx.Response(200, json={"data": {**ORDER, "status": "inprocess"}})

    with pytest.raises(StateConflict, match="in production"):
        await _scripted(printful_api, sandbox).cancel_order(7)


def test_error_message_reads_both_documented_shapes() -> None:
    documented = {"code": 404, "result": "Not found", "error": {"reason": "NotFound"}}
    assert error_message(documented) == ("Not found", "NotFound")
    conflict = {"code": 409, "result": "busy", "error": {"reason": 409, "message": "busy"}}
    assert error_message(conflict) == ("busy", "409")
    problem = {"type": "about:blank", "status": 500, "title": "Server Error", "details": "oops"}
    assert error_message(problem) == ("oops", "Server Error")
    assert error_message(json.loads("null")) == (None, None)
