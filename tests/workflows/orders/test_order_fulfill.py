"""WF01 OrderFulfill end to end: provider-side state in the sandbox, receipts, projection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    Replayer,
    Worker,
)

from autobiz.db.database import Database
from ingress.events import normalise
from ingress.tenants import Source
from kernel.call import PERSIST_TRACE_WITH_ROW_ACTIVITY
from starters.flows import decide, flow_status
from tests.replay.recorder import maybe_record
from tests.replay.support import replay_converter
from tests.support.approver_keys import Approvers
from tests.support.sandbox import Sandbox, WebhookSink
from tests.workflows.support import Harness, HeldActivity, connect_to, running_harness
from workers.worker import WORKFLOWS
from workflows.ids import PRINTFUL_EVENT, printful_external_id
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.integration


async def _ship(h: Harness, workflow_id: str) -> tuple[int, str]:
    """Printful ships; the tracking number is the one its shipment_sent webhook carries
    (Printful's shipment listing has none)."""
    status = await h.status_when(workflow_id, lambda s: s.state == "in_production")
    pf_id = int(status.detail["printful_order_id"])
    tracking = f"9400{pf_id}"
    await h.sandbox.control.advance_printful(
        pf_id, "ship", carrier="USPS", tracking_number=tracking
    )
    shipments = await h.clients.printful.shipments(pf_id)
    assert len(shipments) == 1 and shipments[0].tracking_number is None
    return pf_id, tracking


def _local_activities(history: WorkflowHistory) -> list[str]:
    """The activity types of the run's local-activity markers, in history order."""
    return [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]


async def _store_printful_webhooks(h: Harness, sink: WebhookSink, topic: str) -> None:
    """Printful's signed webhooks of ``topic``, verified, normalised and stored in the event
    store as the ingress stores them (this harness runs no ingress)."""
    received = await sink.wait_for(
        lambda r: any(json.loads(x.body)["type"] == topic for x in sink.for_provider("printful"))
    )
    for request in received:
        if not request.path.endswith("/printful") or json.loads(request.body)["type"] != topic:
            continue
        event = normalise(
            tenant_id=h.tenant, source=Source.PRINTFUL, body=request.body, headers=request.headers
        )
        async with h.db.tenant(h.tenant) as s:
            await s.execute(
                "INSERT INTO event_store (tenant_id, source, provider_event_id, topic,"
                " entity_key, payload, payload_sha256, signature_valid, status)"
                " VALUES (%s, 'printful', %s, %s, %s, %s, %s, true, 'handed_over')",
                (
                    h.tenant,
                    event.provider_event_id,
                    event.topic,
                    event.entity_key,
                    Jsonb(event.payload),
                    event.payload_sha256,
                ),
            )


async def test_happy_path_exactly_once(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    # A second trigger for the same order attaches to the running workflow.
    again = await h.start_order(order_id, pi)
    assert again.id == handle.id and again.result_run_id == handle.result_run_id

    pf_id, tracking = await _ship(h, handle.id)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    result = await handle.result()
    assert result.state == "completed"
    assert result.captured_minor == 2500 and result.tracking_number == tracking

    # Stripe: captured once, for the full amount.
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "succeeded" and intent.amount_received == 2500
    # Printful: exactly one order for this key, confirmed and shipped.
    orders = await h.sandbox.control.printful_orders()
    mine = [o for o in orders if o["external_id"] == printful_external_id(h.tenant, order_id)]
    assert len(mine) == 1 and mine[0]["id"] == pf_id and mine[0]["status"] == "fulfilled"
    # Shopify: fulfilled with the tracking number.
    order = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    assert order.fulfillment_status == "FULFILLED"
    # SendGrid: one email, to the customer, in sandbox mode.
    outbox = await h.sandbox.control.outbox()
    assert [m["recipients"] for m in outbox] == [["customer@example.com"]]
    assert outbox[0]["request"]["template_id"] == "d-autobiz-shipping-confirmation"
    # Receipts: one per side effect, FINANCIAL with amount and currency.
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts] == [
        "stripe.capture_payment",
        "printful.create_order",
        "printful.confirm_order",
        "shopify.create_fulfillment",
        "sendgrid.send_email",
    ]
    capture = receipts[0]
    assert capture.amount_minor == 2500 and capture.currency == "USD"
    assert capture.external_key.startswith("autobiz:")
    # The projection followed the flow (optimistic versions).
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT state, version FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )
    assert row is not None and row["state"] == "completed" and row["version"] >= 6
    status = await flow_status(h.client, handle.id)
    assert status.state == "completed" and status.error is None
    await maybe_record(h.client, handle.id, "order_fulfill_happy_path")


async def test_the_rows_ride_with_the_calls_and_say_in_production_while_it_waits(
    harness: Harness,
) -> None:
    """Every order_state move rides with a tool call (the last with the trace): none
    costs an ``autobiz.order_state_write`` of its own. ``in_production``, which must be
    in the row while the order waits for Printful, is written with the confirm's result,
    in the transaction that stores its receipt; the trace and the last row are written
    by a local activity in the task that ends the run."""
    h = harness
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    pf_id, tracking = await _ship(h, handle.id)

    async def row() -> dict[str, object]:
        async with h.db.tenant(h.tenant) as s:
            found = await s.fetch_one(
                "SELECT state, version, data, updated_at FROM order_state "
                "WHERE tenant_id = %s AND order_id = %s",
                (h.tenant, order_id),
            )
        assert found is not None
        return dict(found)

    waiting = await row()
    for _ in range(100):
        if waiting["state"] == "in_production":
            break
        await asyncio.sleep(0.1)
        waiting = await row()
    assert (waiting["state"], waiting["version"]) == ("in_production", 4)
    data = waiting["data"]
    assert isinstance(data, dict) and data["workflow_id"] == handle.id
    # What the rides carried is in the row: the risk, the capture, the Printful order.
    assert (data["risk"], data["captured_minor"], data["printful_order_id"]) == ("low", 2500, pf_id)
    async with h.db.tenant(h.tenant) as s:
        confirmed = await s.fetch_val(
            "SELECT created_at FROM receipts WHERE tenant_id = %s AND workflow_id = %s "
            "AND tool = 'printful.confirm_order'",
            (h.tenant, handle.id),
        )
    # now() is the transaction's start: the row and the receipt were stored together.
    assert waiting["updated_at"] == confirmed
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    assert (await handle.result()).state == "completed"
    done = await row()
    assert (done["state"], done["version"]) == ("completed", 6)
    assert isinstance(done["data"], dict) and done["data"]["tracking_number"] == tracking
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "autobiz.order_state_write" not in scheduled
    assert "autobiz.order_state_read" not in scheduled
    # The seven provider calls less the risk read, which ran inside a workflow task.
    assert scheduled == [
        "shopify.get_order@1",
        "stripe.capture_payment@1",
        "printful.create_order@1",
        "printful.confirm_order@1",
        "shopify.create_fulfillment@1",
        "sendgrid.send_email@1",
    ]
    # Local: the context load and the risk read at the start; the last row went with the
    # trace, under the name a worker before the ride lacks.
    assert _local_activities(history) == [
        "autobiz.load_flow_context",
        "risk.assess@1",
        "kernel.persist_trace_with_row",
    ]
    # One patch id (the baseline) stands for the earlier four: one marker, one upsert.
    patches = [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert [json.loads(p)["id"] for p in patches] == ["order-fulfill-baseline-1"]
    # The starter set TenantId, OrderId, FlowState and ApprovalPending: not upserted again.
    upserts = [
        dict(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    assert not any("TenantId" in u or "OrderId" in u for u in upserts)
    # One per move the Web UI can show: not "assessing", which the run leaves in the
    # task that entered it (the risk read runs inside it); the trace still has it.
    assert [u["FlowState"].data for u in upserts if "FlowState" in u] == [
        b'"capturing"',
        b'"paid"',
        b'"in_production"',
        b'"shipped"',
        b'"completed"',
    ]
    trace = (await handle.query("kernel_trace"))["entries"]
    states = [e["detail"]["to_state"] for e in trace if e["kind"] == "state_change"]
    assert states[:2] == ["assessing", "capturing"]
    assert sum("TemporalChangeVersion" in u for u in upserts) == 1
    await maybe_record(h.client, handle.id, "order_fulfill_baseline")


async def test_shipment_found_by_polling_printful(
    harness: Harness, webhook_sink: WebhookSink
) -> None:
    """No shipment signal: the poll reads Printful (a shipment, no tracking number) and the
    number from the shipment_sent webhook the ingress stored."""
    h = harness
    await h.sandbox.control.webhooks(target_url=webhook_sink.url)
    order_id = await h.seed_order("19.00", financial_status="paid")
    handle = await h.start_order(order_id, shipment_wait=timedelta(seconds=1), shipment_polls=20)
    _, tracking = await _ship(h, handle.id)
    await _store_printful_webhooks(h, webhook_sink, "shipment_sent")
    result = await handle.result()
    assert result.state == "completed" and result.tracking_number == tracking
    assert result.captured_minor == 0  # already paid: nothing to capture
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "stripe.capture_payment" not in tools and tools.count("sendgrid.send_email") == 1


async def test_polling_without_the_webhook_ends_in_shipment_timeout(harness: Harness) -> None:
    """Shipped at Printful, but no shipment_sent reached us: the listing has no tracking
    number, so the bounded poll ends the flow (SHIPMENT_TIMEOUT), with no made-up number
    and nothing fulfilled at Shopify."""
    h = harness
    order_id = await h.seed_order("19.00", financial_status="paid")
    handle = await h.start_order(order_id, shipment_wait=timedelta(seconds=1), shipment_polls=2)
    await _ship(h, handle.id)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "SHIPMENT_TIMEOUT" in str(failed.value.cause)
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "shopify.create_fulfillment" not in tools and "sendgrid.send_email" not in tools


async def test_large_order_waits_for_approval_then_captures(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi = await h.authorized_order("600.00")
    handle = await h.start_order(order_id, pi)
    status = await h.status_when(handle.id, lambda s: s.approval is not None)
    assert status.state == "awaiting_approval" and status.approval is not None
    assert set(status.approval.roles) == {"fraud_reviewer", "finance"}
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture"  # nothing captured while waiting
    result = await decide(
        h.client, handle.id, await approvers.decision(h.client, handle.id, "omar", True)
    )
    assert result.status == "approved"
    _, tracking = await _ship(h, handle.id)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    done = await handle.result()
    assert done.state == "completed" and done.captured_minor == 60000
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("approved", "omar")]


async def test_order_whose_row_another_flow_wrote_first_continues_it(harness: Harness) -> None:
    """A payment that failed, was dunned and then paid: PaymentFailure wrote the order's
    row first; OrderFulfill reads it on the version conflict and carries on."""
    h = harness
    order_id = await h.seed_order("25.00")
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "INSERT INTO order_state (tenant_id, order_id, version, state, state_hash, data)"
            " VALUES (%s, %s, 2, 'recovered', 'x', '{\"decline_class\": \"soft\"}')",
            (h.tenant, order_id),
        )
    pi = await h.authorize(2500, order_id)
    handle = await h.start_order(order_id, pi)
    _, tracking = await _ship(h, handle.id)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    assert (await handle.result()).state == "completed"
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT version, state, data FROM order_state WHERE order_id = %s", (order_id,)
        )
    assert row is not None and row["state"] == "completed" and row["version"] > 2
    # What the other flow recorded is kept alongside this run's fields.
    assert row["data"]["decline_class"] == "soft" and row["data"]["workflow_id"] == handle.id


def _last_trace(info: activity.Info) -> bool:
    """OrderFulfill's last trace persist: a local activity, inside the task that ends
    the run."""
    return info.is_local and info.activity_type == PERSIST_TRACE_WITH_ROW_ACTIVITY


def _risk_read(info: activity.Info) -> bool:
    """OrderFulfill's risk read: a local activity, in the task after the order is read."""
    return info.is_local and info.activity_type == "risk.assess@1"


@pytest.fixture
async def uncached_held(
    request: pytest.FixtureRequest,
    temporal_env: WorkflowEnvironment,
    sandbox: Sandbox,
    database: Database,
    tenant: str,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Harness, asyncio.Event]]:
    """A worker that keeps no run in its cache (every task and query replays the run's
    history) and holds the activities ``request.param`` picks for 3 s (parametrize
    indirectly)."""
    build = Worker.__init__

    def uncached(self: Worker, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **{**kwargs, "max_cached_workflows": 0})

    monkeypatch.setattr(Worker, "__init__", uncached)
    held = HeldActivity(request.param, 3)
    config = (await connect_to(temporal_env)).config()
    config["interceptors"] = [held]
    async with running_harness(Client(**config), sandbox, database, tenant, task_queue) as h:
        yield h, held.begun


@pytest.mark.parametrize("uncached_held", [_risk_read], indirect=True)
async def test_signals_and_a_query_during_the_local_risk_read_leave_the_run_deterministic(
    uncached_held: tuple[Harness, asyncio.Event],
) -> None:
    """The risk read runs inside the workflow task: a Printful event (a hold removed:
    no exception is running, nothing to do), a Stripe event and a status query that
    arrive while it runs, on a worker that replays every task from history, change
    nothing of what the run does next, and its history replays."""
    h, begun = uncached_held
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    await asyncio.wait_for(begun.wait(), timeout=30)
    await handle.signal(
        PRINTFUL_EVENT,
        {"topic": "order_remove_hold", "provider_event_id": "early", "payload": {}},
    )
    await handle.signal("stripe_event", {"topic": "charge.succeeded"})
    # Answered once the task that ran the read is done: the read's result and the Stripe
    # event are both in the run.
    status = await flow_status(h.client, handle.id)
    assert status.detail["risk"] == "low" and status.detail["stripe_events"] == ["charge.succeeded"]
    _, tracking = await _ship(h, handle.id)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    result = await handle.result()
    assert result.state == "completed" and result.captured_minor == 2500
    history = await handle.fetch_history()
    signalled = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signalled[:2] == [PRINTFUL_EVENT, "stripe_event"]
    replay = Replayer(workflows=list(WORKFLOWS), data_converter=replay_converter())
    assert (await replay.replay_workflow(history)).replay_failure is None
    # Read once, though every task replayed the run: one marker, no activity task.
    assert _local_activities(history).count("risk.assess@1") == 1
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert tools.count("stripe.capture_payment") == 1


@pytest.mark.parametrize("uncached_held", [_last_trace], indirect=True)
async def test_the_last_trace_persist_runs_in_the_last_task_and_the_run_replays(
    uncached_held: tuple[Harness, asyncio.Event],
) -> None:
    """The run's only local activity: a Printful hold and a status query that arrive
    while it runs, on a worker that replays every task from history, leave the run
    deterministic; the trace and the last row are stored."""
    h, begun = uncached_held
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    _, tracking = await _ship(h, handle.id)
    await handle.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    await asyncio.wait_for(begun.wait(), timeout=30)
    hold = {"topic": "order_put_hold", "provider_event_id": "late-hold", "payload": {}}
    await handle.signal(PRINTFUL_EVENT, hold)
    status = await flow_status(h.client, handle.id)  # answered once the task is done
    assert status.state == "completed"
    assert (await handle.result()).state == "completed"
    history = await handle.fetch_history()
    assert any(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events)
    replay = Replayer(workflows=list(WORKFLOWS), data_converter=replay_converter())
    assert (await replay.replay_workflow(history)).replay_failure is None
    async with h.db.tenant(h.tenant) as s:
        row = await s.fetch_one(
            "SELECT state, version FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )
        traced = await s.fetch_val(
            "SELECT count(*) FROM traces WHERE tenant_id = %s AND workflow_id = %s",
            (h.tenant, handle.id),
        )
    assert row == {"state": "completed", "version": 6}
    assert traced == len((await handle.query("kernel_trace"))["entries"])
