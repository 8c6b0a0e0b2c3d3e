"""``GET /v1/balance_transactions`` as Stripe publishes it: a captured charge makes one
(gross, Stripe's card fee, net; a manual charge only once captured), a refund makes one
(negative, no fee); the objects carry every field the 2023-08-16 spec requires and every
top-level field of the published fixture; ``created`` ranges, newest first, cursor pages;
one account never sees another's. Through the official SDK (``StripePayments``) and raw."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from autobiz.providers.stripe_client import StripePayments
from sandbox.stripe_objects import card_fee
from tests.support.orders import card_payment
from tests.support.reference import fidelity_file
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration

SPEC_NAME = "stripe-spec3.2023-08-16.json"
FIXTURES = json.loads((Path(__file__).parent / "data" / "stripe_fixtures.json").read_text())


def _spec_path() -> Path | None:
    return fidelity_file(SPEC_NAME)


def _schema(name: str) -> dict[str, Any]:
    path = _spec_path()
    if path is None:
        pytest.skip(f"{SPEC_NAME} is not in ../shared/reference/fidelity")
    schema: dict[str, Any] = json.loads(path.read_text())["components"]["schemas"][name]
    return schema


async def _intent(stripe: StripePayments, amount: int, *, manual: bool = False) -> str:
    return await card_payment(stripe, amount, f"o-{uuid.uuid4().hex[:6]}", capture=not manual)


async def _all(stripe: StripePayments, gte: int = 1, lt: int = 2**31) -> list[Any]:
    found: list[Any] = []
    after: str | None = None
    while True:
        page = await stripe.list_balance_transactions(
            created_gte=gte, created_lt=lt, limit=1, starting_after=after
        )
        found.extend(page.transactions)
        if not page.has_more:
            return found
        after = page.transactions[-1].id


async def test_captures_and_refunds_make_balance_transactions(sandbox: Sandbox) -> None:
    clients = await sandbox.tenant_clients("bt-one", "bt-two")
    try:
        one = (await clients.for_tenant("bt-one")).stripe
        two = (await clients.for_tenant("bt-two")).stripe
        auto = await _intent(one, 1000)
        manual = await _intent(one, 2000, manual=True)
        assert await _all(one) != [] and len(await _all(one)) == 1  # nothing until captured
        await one.capture_payment_intent(
            manual, idempotency_key=str(uuid.uuid4()), amount_to_capture=1500
        )
        refund = await one.create_refund(
            payment_intent_id=auto, idempotency_key=str(uuid.uuid4()), amount=400
        )

        listed = await _all(one)  # one per page: the cursor walks them all
        by_kind = sorted((t.type, t.amount, t.fee, t.net) for t in listed)
        assert by_kind == [
            ("charge", 1000, card_fee(1000), 1000 - card_fee(1000)),
            ("charge", 1500, card_fee(1500), 1500 - card_fee(1500)),
            ("refund", -400, 0, -400),
        ]
        assert card_fee(1000) == 59 and card_fee(1500) == 74  # 2.9% + 30, half up
        assert [t.created for t in listed] == sorted((t.created for t in listed), reverse=True)
        assert {t.source for t in listed if t.type == "refund"} == {refund.id}
        charge = await one.retrieve_charge(
            (await one.retrieve_payment_intent(manual)).latest_charge or ""
        )
        assert charge.amount_captured == 1500
        assert await _all(two) == []  # another account's balance is its own

        newest = max(t.created for t in listed)
        assert await _all(one, gte=newest + 1) == []
        assert await _all(one, lt=min(t.created for t in listed)) == []
    finally:
        await clients.aclose()


async def test_the_object_has_the_spec_and_fixture_shape(sandbox: Sandbox) -> None:
    key = sandbox.settings.stripe.api_key.get_secret_value()
    stripe = StripePayments(sandbox.settings)
    try:
        await _intent(stripe, 2500)
    finally:
        await stripe.aclose()
    async with httpx.AsyncClient(
        base_url=sandbox.settings.stripe.api_base, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        answer = await http.get("/v1/balance_transactions", params={"limit": "100"})
        answer.raise_for_status()
        page = answer.json()
        (txn,) = page["data"]
        again = (await http.get(f"/v1/balance_transactions/{txn['id']}")).json()
        bad = await http.get("/v1/balance_transactions", params={"limit": "101"})
    assert page["object"] == "list" and page["has_more"] is False
    assert again == txn and bad.status_code == 400
    schema = _schema("balance_transaction")
    assert set(schema["required"]) <= set(txn), set(schema["required"]) - set(txn)
    assert set(txn) - {"balance_type"} <= set(schema["properties"])
    fixture = FIXTURES["resources"]["balance_transaction"]
    assert set(fixture) <= set(txn) and txn["object"] == fixture["object"]
    assert txn["type"] in schema["properties"]["type"]["enum"]
    (fee,) = txn["fee_details"]
    assert set(_schema("fee")["required"]) <= set(fee) and fee["type"] == "stripe_fee"
    assert (txn["amount"], txn["fee"], txn["net"]) == (2500, card_fee(2500), 2500 - card_fee(2500))
