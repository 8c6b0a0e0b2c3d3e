"""The ordering gate: held before the precondition, released in order, or released
flagged after the timeout (driven by the injected clock, never by sleeping)."""

from __future__ import annotations

import pytest

from autobiz.settings import IngressSettings
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import (
    RecordingHandoff,
    charge,
    dumps,
    payment_intent,
    printful_event,
    shopify_order,
    stripe_event,
)

pytestmark = pytest.mark.integration


async def test_shipped_before_order_is_held_then_released_in_order(
    make_ingress: HarnessFactory,
) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    shipped = await h.printful(dumps(printful_event("package_shipped", 31)))
    returned = await h.printful(dumps(printful_event("package_returned", 31)))
    assert shipped.json()["status"] == "held" and returned.json()["status"] == "held"
    assert h.metric("autobiz_ingress_held_total", source="printful") == 2
    await h.relay.run_once()
    assert handoff.delivered == []  # nothing to hand over yet
    assert (await h.shopify(dumps(shopify_order(31)), "orders/paid")).json()["status"] == "pending"
    await h.relay.run_once()
    assert [e.topic for e in handoff.delivered] == [
        "orders/paid",
        "package_shipped",
        "package_returned",
    ]
    assert not any(e.timeout_released for e in handoff.delivered)
    rows = await h.rows()
    assert all(r["status"] == "handed_over" for r in rows)
    assert rows[0]["status_reason"] == "released: precondition met"
    assert h.metric("autobiz_ingress_released_total", source="printful", reason="precondition") == 2


async def test_shipment_waits_for_an_authorised_orders_create_not_a_recorded_one(
    make_ingress: HarnessFactory,
) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    shipped = await h.printful(dumps(printful_event("shipment_sent", 41)))
    assert shipped.json()["status"] == "held"
    # A pending order's orders/create is only recorded: it starts nothing, so no release.
    pending = await h.shopify(dumps(shopify_order(41, financial_status="pending")), "orders/create")
    assert pending.json()["status"] == "ignored"
    await h.relay.run_once()
    assert handoff.delivered == []
    # The authorised order's orders/create starts the run: the shipment follows it.
    authorised = shopify_order(41, financial_status="authorized") | {"updated_at": "later"}
    created = await h.shopify(dumps(authorised), "orders/create")
    assert created.json()["status"] == "pending"
    await h.relay.run_once()
    assert [e.topic for e in handoff.delivered] == ["orders/create", "shipment_sent"]


async def test_refund_before_capture_released_by_the_capture(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    refund = await h.stripe(dumps(stripe_event("charge.refunded", charge("pi_r"))))
    assert refund.json()["status"] == "held"
    capture = await h.stripe(
        dumps(stripe_event("payment_intent.succeeded", payment_intent("pi_r", "77")))
    )
    assert capture.json()["status"] == "ignored"  # recorded only; it settles the precondition
    rows = await h.rows()
    assert rows[0]["status"] == "pending"  # released in the capture's own transaction
    await h.relay.run_once()
    assert [(e.topic, e.order_id) for e in handoff.delivered] == [("charge.refunded", "77")]


async def test_timeout_release_is_flagged(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff, settings=IngressSettings(hold_timeout_seconds=5))
    await h.stripe(
        dumps(stripe_event("charge.refunded", charge("pi_t") | {"metadata": {"order_id": "5"}}))
    )
    h.clock.advance(4.9)
    await h.relay.run_once()
    assert (await h.rows())[0]["status"] == "held"
    h.clock.advance(0.2)
    await h.relay.run_once()
    [row] = await h.rows()
    assert row["status"] == "handed_over" and row["timeout_released"] is True
    assert row["status_reason"].startswith("released after hold timeout")
    assert [e.timeout_released for e in handoff.delivered] == [True]
    assert h.metric("autobiz_ingress_released_total", source="stripe", reason="timeout") == 1


async def test_timeout_consults_the_provider_probe(make_ingress: HarnessFactory) -> None:
    from ingress.app import IngressDeps, create_app

    class Probe:
        async def holds(self, event: dict[str, object]) -> bool | None:
            return True

    h = await make_ingress(settings=IngressSettings(hold_timeout_seconds=1))
    deps = IngressDeps(**{**h.runtime.deps.__dict__, "probe": Probe()})
    runtime = create_app(deps).state.ingress
    await h.stripe(dumps(stripe_event("charge.refunded", charge("pi_p"))))
    h.clock.advance(2)
    async with h.db.tenant(h.tenant) as s:
        assert await runtime.gate.release_due(s) == 1
    [row] = await h.rows()
    assert row["timeout_released"] is True and "provider confirms" in row["status_reason"]
