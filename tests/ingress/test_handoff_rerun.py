"""Signal-with-start after the order's flow ended: a failed or terminated run is started
again by the next event for the order (its payment would otherwise stay uncaptured);
a completed one is never started again (the event is recorded as ``ignored``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus

from ingress.handoff import TemporalHandoff
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import dumps, shopify_order, stand_in_worker

pytestmark = pytest.mark.integration


@workflow.defn(name="OrderFulfill")
class FinishingOrderFulfill:
    """Stands in for WF01: completes once an event's note says ``finish``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    @workflow.run
    async def run(self, trigger: dict[str, Any]) -> int:
        await workflow.wait_condition(
            lambda: any((e["payload"] or {}).get("note") == "finish" for e in self.events),
            timeout=timedelta(minutes=5),
        )
        return len(self.events)

    @workflow.signal(name="shopify_event")
    def shopify_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def test_a_failed_flow_is_started_again_a_completed_one_never(
    make_ingress: HarnessFactory, client: Client, task_queue: str
) -> None:
    h = await make_ingress(handoff=TemporalHandoff(client, task_queue))
    async with stand_in_worker(client, task_queue, FinishingOrderFulfill):
        handle = client.get_workflow_handle(f"order:{h.tenant}:7301")
        await h.shopify(dumps(shopify_order(7301)), "orders/paid")
        assert (await h.relay.run_once()).handed_over == 1
        first = (await handle.describe()).run_id
        await handle.terminate("lost to a transient error")

        # The next event for the order starts run 2 of the same key.
        await h.shopify(dumps(shopify_order(7301) | {"note": "retry"}), "orders/paid")
        assert (await h.relay.run_once()).handed_over == 1
        second = await handle.describe()
        assert second.run_id != first and second.status == WorkflowExecutionStatus.RUNNING

        await h.shopify(dumps(shopify_order(7301) | {"note": "finish"}), "orders/paid")
        assert (await h.relay.run_once()).handed_over == 1
        assert await handle.result() == 2  # run 2 saw its two events

        # Completed: a later event is recorded, and no run 3 starts.
        await h.shopify(dumps(shopify_order(7301) | {"note": "late"}), "orders/paid")
        report = await h.relay.run_once()
        assert (report.handed_over, report.skipped) == (0, 1)
        assert (await handle.describe()).run_id == second.run_id
        row = [r for r in await h.rows() if r["topic"] == "orders/paid"][-1]
        assert row["status"] == "ignored" and "already completed" in row["status_reason"]
