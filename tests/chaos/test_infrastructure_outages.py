"""The infrastructure goes away under running flows and comes back: the Temporal dev
server SIGKILLed and restarted on its database file, PostgreSQL stopped under the worker
and the ingress, the sandbox's provider APIs unanswering. Orders in flight at that moment
and orders whose webhooks arrive meanwhile all end as expected, once each, with one
capture, one Printful order and one email each (``ChaosRig.judge``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autobiz.devstack.services import tcp_open
from autobiz.soak.chaos import restart_temporal, sandbox_unreachable, stop_postgres
from tests.chaos.conftest import ChaosRig, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

PRINTFUL_CREATE = ("printful.create_order@1", "/printful/v2/orders")


async def _printful_held(rig: ChaosRig, case: Any) -> None:
    """Hold the next Printful order create and wait until ``case``'s flow is inside it."""
    tool, path = PRINTFUL_CREATE
    await rig.day.control.fault("latency", path, method="POST", latency_ms=4000)
    await rig.in_flight(lambda: case.workflow_id, tool, path)


async def _retried(rig: ChaosRig, workflow_id: str) -> list[str]:
    """The activities of the workflow that needed more than one attempt."""
    events = (await rig.client.get_workflow_handle(workflow_id).fetch_history()).events
    names = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    return [
        names[e.activity_task_started_event_attributes.scheduled_event_id]
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.attempt > 1
    ]


async def _completions(rig: ChaosRig, workflow_id: str, tool: str) -> list[datetime]:
    """When each scheduled ``tool`` activity of the workflow completed."""
    events = (await rig.client.get_workflow_handle(workflow_id).fetch_history()).events
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == tool
    }
    return [
        e.event_time.ToDatetime(tzinfo=UTC)
        for e in events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]


async def test_temporal_restarted_mid_flow(rig: ChaosRig) -> None:
    inside = rig.case("in a Printful call when Temporal dies", "OrderFulfill", "completed")
    arriving = rig.case("its webhook arrives while Temporal is down", "OrderFulfill", "completed")
    first = asyncio.create_task(rig.day._fulfilled_order(inside, "33.00"))
    await _printful_held(rig, inside)
    restart = asyncio.create_task(
        asyncio.to_thread(restart_temporal, rig.stack, rig.log, down_for=4.0)
    )
    t = rig.settings.temporal
    await eventually(
        lambda: asyncio.to_thread(lambda: None if tcp_open(t.host, t.port) else True),
        within=15,
        what="the Temporal frontend to go away",
    )
    second = asyncio.create_task(rig.day._fulfilled_order(arriving, "34.00"))
    event = await restart
    assert event.action == "restart_temporal" and event.pid is not None
    await asyncio.gather(first, second)
    for case in (inside, arriving):
        assert await rig.runs(str(case.workflow_id)) == 1
    await rig.judge([inside, arriving])


async def test_postgres_stopped_under_the_worker_and_the_ingress(rig: ChaosRig) -> None:
    inside = rig.case("in a Printful call when PostgreSQL stops", "OrderFulfill", "completed")
    arriving = rig.case("its webhook arrives while PostgreSQL is down", "OrderFulfill", "completed")
    first = asyncio.create_task(rig.day._fulfilled_order(inside, "35.00"))
    await _printful_held(rig, inside)
    seen = len(await rig.day.control.deliveries())
    stop = asyncio.create_task(asyncio.to_thread(stop_postgres, rig.stack, rig.log, down_for=8.0))
    pg = rig.settings.postgres
    await eventually(
        lambda: asyncio.to_thread(lambda: None if tcp_open(pg.host, pg.port) else True),
        within=15,
        what="PostgreSQL to stop",
    )
    second = asyncio.create_task(rig.day._fulfilled_order(arriving, "36.00"))
    await stop
    back = datetime.now(UTC)
    await asyncio.gather(first, second)
    # While it could not store, the ingress answered 5xx (never 2xx); the provider's
    # retry got the event in once the database was back.
    later = (await rig.day.control.deliveries())[seen:]
    assert any((d["status"] or 0) >= 500 for d in later), later
    # The Printful call in flight when the database stopped needed it for its receipt:
    # it completed (once) only after the database was back.
    [done] = await _completions(rig, str(inside.workflow_id), PRINTFUL_CREATE[0])
    assert done >= back - timedelta(seconds=1), (done, back)
    for case in (inside, arriving):
        assert await rig.runs(str(case.workflow_id)) == 1
    await rig.judge([inside, arriving])


async def test_sandbox_unreachable_for_a_while(rig: ChaosRig) -> None:
    orders = [
        rig.case(f"order #{n} while the providers do not answer", "OrderFulfill", "completed")
        for n in (1, 2)
    ]
    flows = [
        asyncio.create_task(rig.day._fulfilled_order(case, amount))
        for case, amount in zip(orders, ("37.00", "38.00"), strict=True)
    ]
    # Once the shop has the orders (the checkouts are done), the providers go dark.
    await eventually(
        lambda: asyncio.sleep(0, all(c.workflow_id for c in orders) or None),
        within=60,
        what="both checkouts",
    )
    event = await sandbox_unreachable(rig.day.control, rig.log, down_for=8.0)
    assert event.action == "sandbox_unreachable"
    await asyncio.gather(*flows)
    retried = [await _retried(rig, str(c.workflow_id)) for c in orders]
    assert any(retried), "no provider call was retried: the outage missed the flows"
    await rig.judge(orders)
