"""``shopify.search_orders@1`` against the sandbox over HTTP: Shopify's search syntax by
name, email and creation window, newest first, the latest fulfillment's tracking, one
shop's orders only; and the query document against Shopify's published 2026-01 schema."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.shopify_activities import ShopifyActivities
from autobiz.db.database import Database
from autobiz.providers.shopify_client import SEARCH_ORDERS, order_search_query
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.tools.shopify import (
    CreateFulfillmentInput,
    SearchOrdersInput,
    SearchOrdersOutput,
)
from tests.conftest import new_tenant
from tests.support.calls import call_context
from tests.support.reference import fidelity_file
from tests.support.sandbox import Sandbox

SCHEMA_NAME = "shopify-admin-2026-01.json.gz"


def _schema_path() -> Path | None:
    return fidelity_file(SCHEMA_NAME)


def test_the_query_is_valid_against_shopify_2026_01() -> None:
    graphql = pytest.importorskip("graphql")
    path = _schema_path()
    if path is None:
        pytest.skip(f"{SCHEMA_NAME} is not in ../shared/reference/fidelity")
    raw = json.loads(gzip.decompress(path.read_bytes()))
    # Shopify's own schema breaks a rule graphql-core checks (deprecated interface ids).
    schema = graphql.build_client_schema(raw.get("data", raw), assume_valid=True)
    assert graphql.validate(schema, graphql.parse(SEARCH_ORDERS)) == []


def test_the_search_syntax() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert order_search_query(name="#1001") == 'name:"#1001"'
    assert (
        order_search_query(email='a"b@x.com', created_from=start, created_to=start + timedelta(1))
        == 'email:"a\\"b@x.com" AND created_at:>=2026-03-01T00:00:00Z'
        " AND created_at:<2026-03-02T00:00:00Z"
    )
    with pytest.raises(ValueError):
        order_search_query()


def test_the_input_needs_a_filter_and_a_sane_window() -> None:
    with pytest.raises(ValidationError):
        SearchOrdersInput()
    with pytest.raises(ValidationError):
        SearchOrdersInput(name="#1", first=251)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        SearchOrdersInput(created_from=start, created_to=start)
    with pytest.raises(ValidationError):
        SearchOrdersInput(created_from=datetime(2026, 3, 1))  # naive: refused
    assert SearchOrdersInput(email="a@b.co").first == 10


async def _search(
    shopify: ShopifyActivities, tenant: str, input: SearchOrdersInput
) -> SearchOrdersOutput:
    ctx = call_context(tenant, tools.shopify.SEARCH_ORDERS, input, workflow_type="wismo")
    return await ActivityEnvironment().run(shopify.search_orders, ctx, input)


@pytest.mark.integration
async def test_search_by_name_email_and_window(
    clients: TenantClients, database: Database, tenant: str, sandbox: Sandbox
) -> None:
    shop = sandbox.accounts[tenant].shopify_shop_domain
    first = await sandbox.control.seed_shopify_order(email="Ada@Example.com", shop=shop)
    second = await sandbox.control.seed_shopify_order(
        email="ada@example.com", shop=shop, line_items=[{"title": "Mug", "price": "12.50"}]
    )
    await sandbox.control.seed_shopify_order(email="bob@example.com", shop=shop)
    # Another merchant's order with the same customer: never in this shop's answers.
    other_tenant = await new_tenant(database)
    await sandbox.host(other_tenant)
    await sandbox.control.seed_shopify_order(
        email="ada@example.com", shop=sandbox.accounts[other_tenant].shopify_shop_domain
    )
    shopify = ShopifyActivities(clients, database)
    fulfil = CreateFulfillmentInput(
        order_id=str(first["legacy_id"]),
        tracking_company="USPS",
        tracking_number="9400100000000000000001",
        tracking_url="https://tools.usps.com/go/TrackConfirmAction?tLabels=9400100000000000000001",
    )
    await ActivityEnvironment().run(
        shopify.create_fulfillment,
        call_context(tenant, tools.shopify.CREATE_FULFILLMENT, fulfil),
        fulfil,
    )

    by_email = await _search(shopify, tenant, SearchOrdersInput(email="ADA@example.com"))
    assert [o.order_name for o in by_email.orders] == [second["name"], first["name"]]
    assert by_email.count == 2
    newest, oldest = by_email.orders
    assert newest.total_minor == 1250 and newest.currency == "USD" and newest.tracking is None
    assert newest.financial_status == "PAID" and newest.fulfillment_status == "UNFULFILLED"
    assert oldest.order_id == str(first["legacy_id"])
    assert oldest.fulfillment_status == "FULFILLED"
    assert oldest.tracking is not None
    assert oldest.tracking.number == "9400100000000000000001"
    assert oldest.tracking.company == "USPS" and oldest.tracking.url is not None

    by_name = await _search(shopify, tenant, SearchOrdersInput(name=first["name"]))
    assert [o.order_id for o in by_name.orders] == [str(first["legacy_id"])]
    assert by_name.orders[0].customer_email == "Ada@Example.com"

    now = datetime.now(UTC)
    window = await _search(
        shopify,
        tenant,
        SearchOrdersInput(created_from=now - timedelta(hours=1), created_to=now + timedelta(1)),
    )
    assert window.count == 3  # this shop's three, not the other merchant's
    assert (
        await _search(shopify, tenant, SearchOrdersInput(created_to=now - timedelta(hours=1)))
    ).orders == []
    limited = await _search(shopify, tenant, SearchOrdersInput(email="ada@example.com", first=1))
    assert [o.order_name for o in limited.orders] == [second["name"]]
    assert (await _search(shopify, tenant, SearchOrdersInput(name="#9999"))).orders == []
