"""A tenant's correctly signed webhook that names another tenant's object moves nothing:
it is stored as a dead letter (``cross_tenant: …``), answered 200 (so the provider stops
retrying), recorded as a security incident in the sender's ``audit_log`` and counted."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import SecretStr

from autobiz.db.database import Database
from ingress.tenants import StaticWebhookSecrets
from tests.conftest import new_tenant
from tests.ingress.conftest import HarnessFactory, tenant_config
from tests.ingress.support import (
    RecordingHandoff,
    dumps,
    payment_intent,
    printful_header,
    shopify_header,
    shopify_order,
    stripe_event,
    stripe_header,
)
from tests.support.ledger import security_incidents
from workflows.ids import printful_external_id

pytestmark = pytest.mark.integration

B_SHOPIFY, B_STRIPE, B_PRINTFUL = "shpss_tenant_b", "whsec_tenant_b", "pfwh_tenant_b"
CROSS = "security.CROSS_TENANT_REFUSED"


async def _two_tenants(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> tuple[Any, str]:
    b = await new_tenant(database, "b")
    secrets = StaticWebhookSecrets(
        {
            tenant: tenant_config(tenant),
            b: tenant_config(
                b,
                shopify=[SecretStr(B_SHOPIFY)],
                stripe=[SecretStr(B_STRIPE)],
                printful=[SecretStr(B_PRINTFUL)],
            ),
        }
    )
    return await make_ingress(secrets=secrets, handoff=RecordingHandoff()), b


async def test_shopify_order_of_another_tenant_is_refused(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    h, b = await _two_tenants(make_ingress, database, tenant)
    order_id = random.randrange(10**12, 10**13)
    created = await h.shopify(
        dumps(shopify_order(order_id, financial_status="authorized")), "orders/create"
    )
    assert created.json()["status"] == "pending"  # A's own order, first seen for A
    body = dumps(shopify_order(order_id))  # B's secret, A's order
    answer = await h.shopify(
        body,
        "orders/paid",
        header=shopify_header(body, B_SHOPIFY),
        **{"X-Shopify-Shop-Domain": f"{b}.myshopify.com"},
    )
    assert answer.status_code == 200 and answer.json()["status"] == "dead_letter"
    [row] = await h.rows(b)
    assert row["status"] == "dead_letter"
    assert row["status_reason"].startswith("cross_tenant: shopify_order")
    [incident] = await security_incidents(database, b, CROSS)
    assert incident["actor"] == "ingress:shopify" and incident["outcome"] == "refused"
    assert incident["detail"]["event_id"] == row["event_id"]
    assert await security_incidents(database, tenant, CROSS) == []
    labels = {"source": "shopify", "code": "CROSS_TENANT_REFUSED"}
    assert h.metric("autobiz_ingress_security_incidents_total", **labels) == 1
    await h.relay.run_once()
    assert [e.tenant_id for e in h.handoff.delivered] == [tenant]  # only A's own event


async def test_stripe_event_whose_order_key_names_another_tenant_is_refused(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    h, b = await _two_tenants(make_ingress, database, tenant)
    pi = f"pi_{random.randrange(10**9)}"
    body = dumps(
        stripe_event("payment_intent.payment_failed", payment_intent(pi, "77", tenant=tenant))
    )
    answer = await h.stripe(body, header=stripe_header(body, B_STRIPE, t=h.clock.unix))
    assert answer.json()["status"] == "dead_letter"
    [row] = await h.rows(b)
    assert row["status_reason"] == "cross_tenant: order_key names another tenant"
    assert len(await security_incidents(database, b, CROSS)) == 1


async def test_stripe_payment_intent_first_seen_for_another_tenant_is_refused(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    h, b = await _two_tenants(make_ingress, database, tenant)
    pi = f"pi_{random.randrange(10**9)}"
    mine = dumps(stripe_event("payment_intent.payment_failed", payment_intent(pi, "77")))
    assert (await h.stripe(mine)).json()["status"] == "pending"
    theirs = dumps(stripe_event("payment_intent.payment_failed", payment_intent(pi, "78")))
    answer = await h.stripe(theirs, header=stripe_header(theirs, B_STRIPE, t=h.clock.unix))
    assert answer.json()["status"] == "dead_letter"
    assert len(await security_incidents(database, b, CROSS)) == 1


async def test_printful_order_made_for_another_tenant_is_refused(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    h, b = await _two_tenants(make_ingress, database, tenant)
    external = printful_external_id(tenant, "5123")  # derived for A
    order = {"id": 7, "external_id": external, "status": "fulfilled"}
    payload = {
        "type": "shipment_sent",
        "occurred_at": "2026-12-01T00:00:00Z",
        "retries": 0,
        "store_id": 1,
        "data": {"order": order, "shipment": {}},
    }
    body = dumps(payload)
    answer = await h.printful(body, header=printful_header(body, B_PRINTFUL))
    assert answer.json()["status"] == "dead_letter"
    [row] = await h.rows(b)
    assert row["status_reason"].startswith("cross_tenant: external_id")
    # The same event signed by A, whose order it is, is taken in normally.
    ok = await h.printful(body)
    assert ok.json()["status"] != "dead_letter"
