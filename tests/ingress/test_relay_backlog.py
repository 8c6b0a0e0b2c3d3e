"""``autobiz_ingress_relay_backlog{tenant,source,status}`` and its oldest age, as
``GET /metrics`` shows them after each relay pass: what is left waiting, how long the
oldest has waited, and 0 once the relay has handed everything over."""

from __future__ import annotations

import pytest

from tests.ingress.conftest import Harness, HarnessFactory
from tests.ingress.support import RecordingHandoff, dumps, shopify_order
from tests.workers.test_worker_metrics import parse_exposition, total

pytestmark = pytest.mark.integration


async def _scrape(h: Harness, name: str, **labels: str) -> float:
    text = (await h.http.get("/metrics")).text
    return total(parse_exposition(text), name, **labels)


async def test_backlog_and_oldest_age_follow_the_relay(make_ingress: HarnessFactory) -> None:
    handoff = RecordingHandoff(failing=True)  # Temporal unreachable
    h = await make_ingress(handoff=handoff)
    for n in range(3):
        assert (await h.shopify(dumps(shopify_order(700 + n)), "orders/paid")).status_code == 200
        h.clock.advance(10)
    pending = {"tenant": h.tenant, "source": "shopify", "status": "pending"}
    await h.relay.run_once()  # every hand-off fails: all three stay pending
    assert await _scrape(h, "autobiz_ingress_relay_backlog", **pending) == 3
    # The first was stored 30 s ago by the ingress's clock.
    age = "autobiz_ingress_relay_backlog_oldest_age_seconds"
    assert await _scrape(h, age, **pending) == 30
    # The other sources and statuses read 0, not nothing.
    assert await _scrape(h, "autobiz_ingress_relay_backlog", source="stripe", status="held") == 0
    text = (await h.http.get("/metrics")).text
    assert (
        f'autobiz_ingress_relay_backlog{{source="stripe",status="held",tenant="{h.tenant}"}}'
        in text
    )

    handoff.failing = False
    h.clock.advance(120)  # past the back-off
    await h.relay.run_once()
    assert len(handoff.delivered) == 3
    assert await _scrape(h, "autobiz_ingress_relay_backlog", tenant=h.tenant) == 0
    assert await _scrape(h, age, tenant=h.tenant) == 0
