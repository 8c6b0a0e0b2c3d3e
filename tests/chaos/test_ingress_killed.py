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
from pathlib import Path

import httpx
import pytest

from autobiz.demo.business_day import Case
from autobiz.soak.chaos import freeze, kill, start
from tests.chaos.conftest import ChaosRig, eventually
from workflows.ids import order_workflow_id

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


def _unread(port: int) -> int:
    """Bytes received on the ingress's connections and not yet read by it: a request
    waiting in its socket (``/proc/net/tcp``'s rx_queue of the ESTABLISHED sockets whose
    local port is the ingress's)."""
    waiting = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
            waiting += int(queues.split(":")[1], 16)
    return waiting


async def _quiet_webhooks(rig: ChaosRig) -> None:
    """Wait until the sandbox has sent every webhook it had (none queued)."""

    async def drained() -> bool | None:
        async with httpx.AsyncClient(
            base_url=f"http://{rig.settings.sandbox.host}:{rig.settings.sandbox.port}",
            headers=rig.day.control.auth_headers,
        ) as http:
            pending = (await http.get("/_control/webhooks")).json()["pending"]
        return True if pending == 0 else None

    await eventually(drained, within=30, what="the sandbox's webhook queue to drain")
    await asyncio.sleep(0.5)  # the last one's answer


async def test_killed_with_the_request_in_its_socket(rig: ChaosRig) -> None:
    order = rig.case("ingress killed with the webhook unanswered", "OrderFulfill", "completed")
    # The customer's card is authorised first, and Stripe's webhooks about it are in:
    # the next request the ingress gets is the shop's orders/create.
    pi = await rig.day._authorise("39.00")
    await _quiet_webhooks(rig)
    seen = len(await rig.day.control.deliveries())
    port = rig.settings.ingress.port
    await asyncio.to_thread(freeze, rig.stack, "ingress")
    try:
        order_id = await rig.day._checkout("39.00", pi=pi, status="authorized")
        order.workflow_id = order_workflow_id(order.tenant, order_id)
        order.facts.update(order_id=order_id, payment_intent=pi, amount="39.00")
        await eventually(
            lambda: asyncio.to_thread(lambda: True if _unread(port) else None),
            within=30,
            what="the orders/create webhook waiting in the ingress's socket",
        )
    finally:
        await asyncio.to_thread(kill, rig.stack, "ingress")
    await asyncio.to_thread(start, rig.stack, "ingress")
    status = await rig.day._state(order, lambda s: s.state == "in_production")
    await rig.day.control.advance_printful(status.detail["printful_order_id"], "ship")
    await rig.day._settle(order)
    attempts = [
        d
        for d in (await rig.day.control.deliveries())[seen:]
        if d["provider"] == "shopify" and d["topic"] == "orders/create"
    ]
    assert not attempts[0]["delivered"], attempts  # it went down with the ingress
    assert attempts[-1]["delivered"], attempts
    assert len({d["event_id"] for d in attempts}) == 1, attempts
    assert len(await _stored(rig, order)) == 1
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
