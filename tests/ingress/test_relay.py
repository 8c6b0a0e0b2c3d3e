"""The relay with an in-memory hand-off: pending until delivered, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from autobiz.settings import IngressSettings
from ingress.handoff import EventEnvelope, PermanentHandoffError
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import RecordingHandoff, dumps, shopify_order, stripe_event

pytestmark = pytest.mark.integration


async def test_temporal_unreachable_then_recovered_each_once(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff(failing=True)
    h = await make_ingress(handoff=handoff)
    for n in range(5):
        assert (await h.shopify(dumps(shopify_order(100 + n)), "orders/paid")).status_code == 200
    report = await h.relay.run_once()
    assert report.retried == 5 and report.handed_over == 0
    rows = await h.rows()
    assert {r["status"] for r in rows} == {"pending"} and {r["attempts"] for r in rows} == {1}
    assert all("unreachable" in r["status_reason"] for r in rows)
    # Backing off: nothing is due before the back-off ends.
    assert (await h.relay.run_once()).retried == 0
    handoff.failing = False
    h.clock.advance(5)
    assert (await h.relay.run_once()).handed_over == 5
    assert (await h.relay.run_once()).handed_over == 0
    assert sorted(e.order_id or "" for e in handoff.delivered) == [str(100 + n) for n in range(5)]
    rows = await h.rows()
    assert {r["status"] for r in rows} == {"handed_over"}
    assert all(r["handed_over_at"] == h.clock.now for r in rows)


async def test_concurrent_relays_never_hand_over_twice(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    for n in range(20):
        await h.shopify(dumps(shopify_order(500 + n)), "orders/paid")
    await asyncio.gather(*(h.relay.run_once() for _ in range(4)))
    ids = [e.event_id for e in handoff.delivered]
    assert len(ids) == 20 and len(set(ids)) == 20


async def test_per_entity_order_kept_while_head_fails(make_ingress: HarnessFactory) -> None:
    calls: list[str] = []

    class FirstFails(RecordingHandoff):
        async def deliver(self, event: EventEnvelope) -> None:
            calls.append(event.provider_event_id)
            if len(calls) == 1:
                raise ConnectionError("blip")
            await super().deliver(event)

    handoff = FirstFails()
    h = await make_ingress(handoff=handoff)
    pi = {"id": "pi_seq", "metadata": {}}
    for n in range(3):
        await h.stripe(
            dumps(stripe_event("payment_intent.payment_failed", pi, event_id=f"evt_s{n}"))
        )
    await h.relay.run_once()
    assert calls == ["evt_s0"]  # the later events of that PaymentIntent wait behind it
    h.clock.advance(5)
    await h.relay.run_once()
    assert [e.provider_event_id for e in handoff.delivered] == ["evt_s0", "evt_s1", "evt_s2"]


async def test_permanent_failure_and_attempt_cap_dead_letter(make_ingress: HarnessFactory) -> None:
    class Refuses(RecordingHandoff):
        async def deliver(self, event: EventEnvelope) -> None:
            if event.topic == "orders/cancelled":
                raise PermanentHandoffError("no such workflow type")
            raise ConnectionError("down")

    h = await make_ingress(handoff=Refuses(), settings=IngressSettings(relay_max_attempts=3))
    cancelled = shopify_order(9) | {"cancelled_at": "2026-03-01T00:00:00Z"}
    await h.shopify(dumps(cancelled), "orders/cancelled")
    await h.shopify(dumps(shopify_order(10)), "orders/paid")
    for _ in range(4):
        await h.relay.run_once()
        h.clock.advance(120)
    rows = await h.rows()
    assert [r["status"] for r in rows] == ["dead_letter", "dead_letter"]
    assert rows[0]["status_reason"].startswith("hand-off impossible")
    assert rows[1]["status_reason"].startswith("hand-off failed 3 times")


async def test_charge_finds_its_order_through_the_payment_intent(
    make_ingress: HarnessFactory,
) -> None:
    handoff = RecordingHandoff()
    h = await make_ingress(handoff=handoff)
    from tests.ingress.support import charge, payment_intent

    await h.stripe(dumps(stripe_event("payment_intent.succeeded", payment_intent("pi_k", "8801"))))
    await h.stripe(dumps(stripe_event("charge.refunded", charge("pi_k"))))
    await h.relay.run_once()
    [delivered] = handoff.delivered
    assert (delivered.topic, delivered.order_id, delivered.payment_intent) == (
        "charge.refunded",
        "8801",
        "pi_k",
    )
