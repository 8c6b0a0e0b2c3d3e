"""Probes, metrics, the settings-built tenant table, and routing wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from autobiz.settings import IngressSettings, Settings
from ingress.handoff import EventEnvelope, PermanentHandoffError, TemporalHandoff
from ingress.routing import ROUTES, Action, is_known, route_for
from ingress.tenants import Hints, Source, StaticWebhookSecrets, secrets_from_settings
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import dumps, shopify_order
from workflows.ids import FLOWS, wismo_workflow_id

pytestmark = pytest.mark.integration


async def test_probes_and_metrics(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    assert (await h.http.get("/healthz")).json() == {"status": "ok"}
    assert (await h.http.get("/readyz")).json() == {"status": "ready"}
    await h.shopify(dumps(shopify_order(1)), "orders/paid")
    await h.shopify(dumps(shopify_order(1)), "orders/paid")
    text = (await h.http.get("/metrics")).text
    assert 'autobiz_ingress_events_total{outcome="pending",source="shopify"} 1.0' in text
    assert 'autobiz_ingress_events_total{outcome="duplicate",source="shopify"} 1.0' in text
    assert "autobiz_ingress_ack_duration_seconds_bucket" in text
    assert (await h.http.get("/webhooks/stripe")).status_code == 405


@pytest.mark.unit
async def test_secrets_from_settings_and_file(tmp_path: Path) -> None:
    extra = tmp_path / "webhooks.yaml"
    extra.write_text("acme-shop:\n  shopify: [shpss_acme]\n  shop_domains: [acme.myshopify.com]\n")
    settings = Settings(ingress=IngressSettings(default_tenant="demo", secrets_file=extra))
    secrets = secrets_from_settings(settings)
    assert sorted(await secrets.tenants()) == ["acme-shop", "demo"]
    [acme] = await secrets.candidates(Source.SHOPIFY, Hints(shop_domain="ACME.myshopify.com"))
    assert acme.tenant_id == "acme-shop" and acme.raw() == [b"shpss_acme"]
    # No hint: every tenant holding a Shopify secret is a candidate.
    assert len(await secrets.candidates(Source.SHOPIFY, Hints())) == 2
    # A tenant hint narrows to that tenant only (and an unknown one to nobody).
    assert [c.tenant_id for c in await secrets.candidates(Source.STRIPE, Hints(tenant="demo"))] == [
        "demo"
    ]
    assert await secrets.candidates(Source.STRIPE, Hints(tenant="acme-shop")) == []
    assert "shpss" not in repr(secrets)


@pytest.mark.unit
def test_static_secrets_refuse_bad_tenant_ids() -> None:
    from autobiz.errors import TenantContextError
    from ingress.tenants import TenantWebhookConfig

    with pytest.raises(TenantContextError):
        StaticWebhookSecrets({"Bad Tenant": TenantWebhookConfig(stripe=[SecretStr("x")])})


@pytest.mark.unit
def test_routing_table_matches_design() -> None:
    paid = route_for(Source.SHOPIFY, "orders/paid")
    assert paid is not None and paid.action is Action.SIGNAL_WITH_START
    assert (paid.workflow, paid.workflow_id("acme", "42")) == ("OrderFulfill", "order:acme:42")
    # An order created with its payment authorised starts the same run; others are records.
    created = route_for(
        Source.SHOPIFY, "orders/create", shopify_order(7, financial_status="authorized")
    )
    assert created is not None and created.workflow_id("acme", "7") == "order:acme:7"
    assert route_for(Source.SHOPIFY, "orders/create", shopify_order(7)) is None
    assert (
        route_for(Source.SHOPIFY, "orders/create", shopify_order(7, financial_status="pending"))
        is None
    )
    cancelled = route_for(Source.SHOPIFY, "orders/cancelled")
    assert cancelled is not None and cancelled.workflow == "OrderCancellation"
    failed = route_for(Source.STRIPE, "payment_intent.payment_failed")
    assert failed is not None and failed.workflow == "PaymentFailure"
    for topic in ("charge.refunded", "charge.dispute.created"):
        r = route_for(Source.STRIPE, topic)
        assert r is not None and (r.action, r.workflow) == (Action.SIGNAL, "OrderFulfill")
    for topic in ("shipment_sent", "package_shipped", "order_failed"):
        r = route_for(Source.PRINTFUL, topic)
        assert r is not None and r.workflow == "OrderFulfill"
    # Every route starts or signals a flow named in workflows.ids, by its business key.
    assert {r.flow for r in ROUTES.values()} <= set(FLOWS)
    assert {r.workflow_id("shop", "42") for r in ROUTES.values()} == {
        "order:shop:42",
        "cancel:shop:42",
        "payment-failure:shop:42",
        wismo_workflow_id("shop", "42"),  # by the Message-ID's hash
    }


@pytest.mark.unit
def test_temporal_handoff_plan_needs_a_business_key() -> None:
    from datetime import UTC, datetime

    envelope = EventEnvelope(
        tenant_id="acme",
        event_id=1,
        dedup_id="stripe:evt",
        source=Source.STRIPE,
        provider_event_id="evt",
        topic="charge.refunded",
        entity_key="payment_intent:pi",
        order_id=None,
        payment_intent="pi",
        payload_sha256="0" * 64,
        payload={},
        received_at=datetime.now(UTC),
    )
    handoff = TemporalHandoff(lambda: None, "tq")  # type: ignore[arg-type,return-value]
    with pytest.raises(PermanentHandoffError):
        handoff.plan(envelope)
    route, workflow_id = handoff.plan(envelope.model_copy(update={"order_id": "42"}))
    assert (route.signal, workflow_id) == ("stripe_event", "order:acme:42")


@pytest.mark.unit
def test_printful_external_id_names_the_order_it_was_made_for() -> None:
    from ingress.events import business_keys
    from workflows.ids import printful_external_id

    external = printful_external_id("acme", "5000091234001")
    payload = {"type": "shipment_sent", "data": {"order": {"id": 9, "external_id": external}}}
    assert business_keys(Source.PRINTFUL, "shipment_sent", payload)["order_id"] == "5000091234001"
    legacy = {"type": "shipment_sent", "data": {"order": {"id": 9, "external_id": "order:acme:7"}}}
    assert business_keys(Source.PRINTFUL, "shipment_sent", legacy)["order_id"] == "7"


@pytest.mark.unit
def test_every_topic_the_sandbox_sends_is_known() -> None:
    """What the sandbox (our stand-in for the providers) emits must be routed or recorded,
    never dead-lettered as an unknown topic."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "sandbox"
    sources = {
        Source.STRIPE: "stripe_api.py",
        Source.SHOPIFY: "shopify_api.py",
        Source.PRINTFUL: "printful_api.py",
    }
    emitted = {
        (source, topic)
        for source, name in sources.items()
        for topic in re.findall(r'_(?:emit|webhook)\(\s*"([a-z_./]+)"', (root / name).read_text())
    }
    assert len(emitted) >= 15
    assert [e for e in sorted(emitted) if not is_known(*e)] == []
