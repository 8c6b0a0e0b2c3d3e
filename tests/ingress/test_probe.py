"""The timeout release re-checks the precondition against the providers (the sandbox,
over real HTTP): captured or not, the order paid or not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from autobiz.providers.shopify_client import ShopifyAdmin
from autobiz.providers.stripe_client import StripePayments
from autobiz.settings import IngressSettings
from ingress.probe import ProviderProbe
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import RecordingHandoff, charge, dumps, printful_event, stripe_event
from tests.support.sandbox import Sandbox, sandbox, sandbox_server  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
async def probe(sandbox: Sandbox) -> AsyncIterator[ProviderProbe]:  # noqa: F811
    p = ProviderProbe(StripePayments(sandbox.settings), ShopifyAdmin(sandbox.settings))
    yield p
    await p.aclose()


async def _pi(stripe: StripePayments, *, capture: bool) -> str:
    pi = await stripe.create_payment_intent(
        amount=2500,
        currency="usd",
        order_key="probe:1",
        idempotency_key=str(uuid.uuid4()),
        payment_method="pm_card_visa",
        confirm=True,
        capture_method="automatic" if capture else "manual",
    )
    return pi.id


async def test_stripe_capture_is_asked_of_stripe(probe: ProviderProbe, sandbox: Sandbox) -> None:  # noqa: F811
    stripe = StripePayments(sandbox.settings)
    try:
        captured, authorised = await _pi(stripe, capture=True), await _pi(stripe, capture=False)
    finally:
        await stripe.aclose()
    refund = {"source": "stripe", "topic": "charge.refunded"}
    assert await probe.holds(refund | {"entity_key": f"payment_intent:{captured}"}) is True
    assert await probe.holds(refund | {"entity_key": f"payment_intent:{authorised}"}) is False
    # No precondition, or no key to look up: the probe cannot tell.
    assert (
        await probe.holds(
            {
                "source": "stripe",
                "topic": "charge.succeeded",
                "entity_key": f"payment_intent:{captured}",
            }
        )
        is None
    )
    assert await probe.holds(refund | {"entity_key": None}) is None


async def test_shopify_order_start_is_asked_of_shopify(
    probe: ProviderProbe,
    sandbox: Sandbox,  # noqa: F811
) -> None:
    paid = await sandbox.control.seed_shopify_order(financial_status="paid")
    pending = await sandbox.control.seed_shopify_order(financial_status="pending")
    shipped = {"source": "printful", "topic": "shipment_sent"}
    assert await probe.holds(shipped | {"entity_key": f"order:{paid['legacy_id']}"}) is True
    assert await probe.holds(shipped | {"entity_key": f"order:{pending['legacy_id']}"}) is False
    assert await probe.holds(shipped | {"entity_key": "order:1"}) is False  # no such order


async def test_timeout_release_records_the_providers_answer(
    make_ingress: HarnessFactory,
    probe: ProviderProbe,
    sandbox: Sandbox,  # noqa: F811
) -> None:
    stripe = StripePayments(sandbox.settings)
    try:
        captured = await _pi(stripe, capture=True)
    finally:
        await stripe.aclose()
    h = await make_ingress(
        handoff=RecordingHandoff(), probe=probe, settings=IngressSettings(hold_timeout_seconds=5)
    )
    await h.stripe(dumps(stripe_event("charge.refunded", charge(captured))))
    await h.printful(dumps(printful_event("shipment_sent", 424242)))
    h.clock.advance(5.1)
    await h.relay.run_once()
    rows = {r["topic"]: r for r in await h.rows()}
    assert rows["charge.refunded"]["timeout_released"] is True
    assert rows["charge.refunded"]["status_reason"].endswith("provider confirms")
    assert rows["shipment_sent"]["status_reason"].endswith("provider denies")
