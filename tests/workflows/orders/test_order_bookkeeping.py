"""OrderFulfill's bookkeeping rides in the workflow task (issue 15, DESIGN §13): the
context, the order projection, the trace and the pure risk score run as local
activities, and the start's search attributes are not upserted again. What they write
is what the remote activities wrote: the projection row, the trace rows, the Web UI's
search attributes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from kernel import tools
from kernel.call import PERSIST_TRACE_ACTIVITY
from kernel.state import RunSummary
from tests.replay.recorder import maybe_record
from tests.workflows.support import Harness, eventually
from workflows.common.handlers import FlowHandlers
from workflows.common.models import LOAD_FLOW_CONTEXT, ORDER_STATE_WRITE
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.integration

PROVIDER_CALLS = [
    "shopify.get_order@1",
    "stripe.capture_payment@1",
    "printful.create_order@1",
    "printful.confirm_order@1",
    "shopify.create_fulfillment@1",
    "sendgrid.send_email@1",
]


def _local_type(event: Any) -> str | None:
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity":
        return None
    return str(json.loads(marker.details["data"].payloads[0].data)["activity_type"])


def _flow_states(event: Any) -> list[str]:
    """What an upsert sets ([] for any other event): a FlowState by its value, any other
    of our attributes by its name (the SDK's ``TemporalChangeVersion`` left out)."""
    if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
        return []
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
    out = []
    for name, payload in fields.indexed_fields.items():
        if name != "TemporalChangeVersion":
            out.append(json.loads(payload.data) if name == "FlowState" else name)
    return out


async def test_bookkeeping_runs_inside_the_workflow_task(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    await handle.signal("printful_shipment", ShipmentNotice(carrier="USPS", tracking_number="T1"))
    result = await handle.result()
    assert result.state == "completed" and result.captured_minor == 2500

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    # Only the provider calls are activities the server schedules.
    assert scheduled == PROVIDER_CALLS
    local = Counter(t for e in history.events if (t := _local_type(e)) is not None)
    assert local == {
        LOAD_FLOW_CONTEXT: 1,
        ORDER_STATE_WRITE: 6,
        tools.risk.ASSESS.activity_name: 1,
        PERSIST_TRACE_ACTIVITY: 1,
    }
    # The starter set the four attributes: no upsert repeats them; each move sets FlowState.
    upserted = [v for e in history.events for v in _flow_states(e)]
    assert upserted == ["assessing", "capturing", "paid", "in_production", "shipped", "completed"]

    # The projection: one optimistic version per move, as before.
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT state, version FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )
    assert row == {"state": "completed", "version": 6}
    # The trace in the database is the run's trace, entry for entry.
    trace: RunSummary = await handle.query(FlowHandlers.kernel_trace)
    async with h.db.tenant(h.tenant) as s:
        rows = await s.fetch_all(
            "SELECT seq, kind, tool, outcome FROM traces WHERE tenant_id = %s "
            "AND workflow_id = %s ORDER BY seq",
            (h.tenant, handle.id),
        )
    assert [(r["seq"], r["kind"], r["tool"], r["outcome"]) for r in rows] == [
        (e.seq, e.kind, e.tool, e.outcome) for e in trace.entries
    ]
    assert sum(1 for e in trace.entries if e.kind == "tool_succeeded") == 7
    # Receipts: one per side effect, as before.
    assert [r.tool for r in await h.receipts(handle.id)] == [
        "stripe.capture_payment",
        "printful.create_order",
        "printful.confirm_order",
        "shopify.create_fulfillment",
        "sendgrid.send_email",
    ]

    # The Web UI finds the run by tenant, order and state.
    query = f"TenantId = '{h.tenant}' AND OrderId = '{order_id}' AND FlowState = 'completed'"

    async def listed() -> list[str] | None:
        found = [wf.id async for wf in h.client.list_workflows(query)]
        return found or None

    assert await eventually(listed, what="the run in visibility") == [handle.id]
    await maybe_record(h.client, handle.id, "order_fulfill_local_bookkeeping")
