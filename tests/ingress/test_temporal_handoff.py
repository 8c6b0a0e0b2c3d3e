"""Hand-off into the real Temporal dev server: signal-with-start by business key, the
held shipment released after the order's start, and an unreachable frontend that
leaves events pending until it is back — each handed over exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client

from autobiz.search_attributes import ORDER_ID, TENANT_ID
from ingress.handoff import TemporalHandoff
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import dumps, printful_event, shopify_order, stand_in_worker
from tests.support.stack import free_port

pytestmark = pytest.mark.integration


@workflow.defn(name="OrderFulfill")
class FakeOrderFulfill:
    """Stands in for WF01: records what the ingress hands it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, trigger: dict[str, Any]) -> None:
        await workflow.wait_condition(lambda: len(self.events) >= 99, timeout=timedelta(minutes=5))

    @workflow.signal(name="shopify_event")
    def shopify_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    @workflow.signal(name="printful_event")
    def printful_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    @workflow.query
    def received(self) -> list[str]:
        return [e["topic"] for e in self.events]

    @workflow.query
    def dedup_ids(self) -> list[str]:
        return [e["dedup_id"] for e in self.events]


async def test_signal_with_start_and_held_shipment(
    make_ingress: HarnessFactory, client: Client, task_queue: str
) -> None:
    h = await make_ingress(handoff=TemporalHandoff(client, task_queue))
    async with stand_in_worker(client, task_queue, FakeOrderFulfill):
        shipped = await h.printful(dumps(printful_event("package_shipped", 7001)))
        assert shipped.json()["status"] == "held"
        body = dumps(shopify_order(7001))
        for _ in range(3):  # a redelivered orders/paid
            assert (await h.shopify(body, "orders/paid")).status_code == 200
        # A second, different orders/paid for the same order signals the same run.
        again = dumps(shopify_order(7001) | {"note": "edited"})
        assert (await h.shopify(again, "orders/paid")).json()["status"] == "pending"
        report = await h.relay.run_once()
        assert report.handed_over == 3 and report.released == 1
        assert (await h.relay.run_once()).handed_over == 0

        handle = client.get_workflow_handle(f"order:{h.tenant}:7001")
        received = await handle.query(FakeOrderFulfill.received)
        # The released shipment (stored first) goes before the later orders/paid.
        assert received == ["orders/paid", "package_shipped", "orders/paid"]
        assert len(set(await handle.query(FakeOrderFulfill.dedup_ids))) == 3
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(TENANT_ID) == h.tenant
        assert desc.typed_search_attributes.get(ORDER_ID) == "7001"
        await handle.terminate("test done")

        # A late event for the closed run is recorded, not retried into a dead letter.
        late = await h.printful(dumps(printful_event("package_returned", 7001)))
        assert late.json()["status"] == "pending"
        report = await h.relay.run_once()
        assert (report.handed_over, report.skipped) == (0, 1)
        row = next(r for r in await h.rows() if r["topic"] == "package_returned")
        assert row["status"] == "ignored" and "has closed" in row["status_reason"]


async def test_temporal_unreachable_then_back_each_handed_over_once(
    make_ingress: HarnessFactory, client: Client, task_queue: str
) -> None:
    state = {"down": True}
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there

    async def connect() -> Client:
        if state["down"]:
            return await Client.connect(dead)  # refused: the frontend is down
        return client

    h = await make_ingress(handoff=TemporalHandoff(connect, task_queue))
    async with stand_in_worker(client, task_queue, FakeOrderFulfill):
        for n in range(3):
            await h.shopify(dumps(shopify_order(7100 + n)), "orders/paid")
        report = await h.relay.run_once()
        assert report.retried == 3 and report.handed_over == 0
        assert {r["status"] for r in await h.rows()} == {"pending"}

        state["down"] = False
        h.clock.advance(10)
        assert (await h.relay.run_once()).handed_over == 3
        h.clock.advance(10)
        assert (await h.relay.run_once()).handed_over == 0
        for n in range(3):
            handle = client.get_workflow_handle(f"order:{h.tenant}:{7100 + n}")
            assert len(await handle.query(FakeOrderFulfill.received)) == 1
            await handle.terminate("test done")
        assert {r["status"] for r in await h.rows()} == {"handed_over"}
