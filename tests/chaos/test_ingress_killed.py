"""The ingress killed (by its pid file) in the middle of taking a webhook in:

* with the request in its socket, unanswered: the provider's delivery fails and is
  retried; the new ingress takes it in, once;
* after it stored the event and answered, before its relay handed it over (Temporal
  frozen, so the hand-off hangs): the new ingress's relay delivers it.

Either way the order's flow runs once (one run under its business key) and ends as
expected, with one capture, one Printful order, one email."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest

from autobiz.demo.business_day import Case
from autobiz.soak.chaos import freeze, kill, start
from tests.chaos.conftest import ChaosRig, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


async def _stored(rig: ChaosRig, case: Case) -> list[dict[str, object]]:
    """The ingress's rows for the order's ``orders/create`` webhook."""
    order_id = case.facts.get("order_id")
    if order_id is None:
        return []
    async with rig.db.tenant(case.tenant) as session:
        rows = await session.fetch_all(
            "SELECT status, provider_event_id FROM event_store WHERE tenant_id = %s "
            "AND source = 'shopify' AND topic = 'orders/create' AND payload->>'id' = %s",
            (case.tenant, str(order_id)),
        )
    return [dict(r) for r in rows]


def _unanswered(port: int) -> int:
    """Established connections to the ingress's port (requests waiting in its socket)."""
    return sum(
        1
        for c in psutil.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def test_killed_with_the_request_in_its_socket(rig: ChaosRig) -> None:
    order = rig.case("ingress killed with the webhook unanswered", "OrderFulfill", "completed")
    seen = len(await rig.day.control.deliveries())
    pid = await asyncio.to_thread(freeze, rig.stack, "ingress")
    flow = asyncio.create_task(rig.day._fulfilled_order(order, "39.00"))
    port = rig.settings.ingress.port

    async def in_its_socket() -> bool | None:
        return True if order.facts.get("order_id") and _unanswered(port) else None

    try:
        await eventually(in_its_socket, within=30, what="a webhook waiting in the ingress")
    finally:
        await asyncio.to_thread(kill, rig.stack, "ingress")
    await asyncio.to_thread(start, rig.stack, "ingress")
    await flow
    attempts = [
        d
        for d in (await rig.day.control.deliveries())[seen:]
        if d["provider"] == "shopify" and d["topic"] == "orders/create"
    ]
    assert not attempts[0]["delivered"], attempts  # it went down with the ingress
    assert attempts[-1]["delivered"], attempts
    assert len(await _stored(rig, order)) == 1, pid
    assert await rig.runs(str(order.workflow_id)) == 1
    await rig.judge([order])


async def test_killed_between_storing_and_handing_over(rig: ChaosRig) -> None:
    order = rig.case("ingress killed before its relay handed over", "OrderFulfill", "completed")
    temporal = await asyncio.to_thread(freeze, rig.stack, "temporal")
    try:
        flow = asyncio.create_task(rig.day._fulfilled_order(order, "41.00"))

        async def pending() -> bool | None:
            rows = await _stored(rig, order)
            return True if rows and rows[0]["status"] == "pending" else None

        await eventually(pending, within=30, what="the webhook stored, not handed over")
        await asyncio.to_thread(kill, rig.stack, "ingress")
    finally:
        os.kill(temporal, signal.SIGCONT)
    await asyncio.to_thread(start, rig.stack, "ingress")
    await flow
    rows = await _stored(rig, order)
    assert [r["status"] for r in rows] == ["handed_over"]
    assert await rig.runs(str(order.workflow_id)) == 1
    await rig.judge([order])
