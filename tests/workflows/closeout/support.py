"""Helpers for the closeout tests: the tenant's local today, a day closed, provider truth
read back from the sandbox over its API, the rows the closeout wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle

from activities.closeout_activities import fetch_metrics, fetch_reports
from autobiz.providers.stripe_client import BalanceTransactionInfo
from starters.closeout import start_closeout
from tests.workflows.support import Harness, ship_printful
from workflows.closeout.models import CloseoutResult, day_window
from workflows.orders.models import OrderFulfillResult, ShipmentNotice


def local_today(h: Harness) -> date:
    return datetime.now(ZoneInfo(h.config.closeout.timezone)).date()


async def close_day(h: Harness, day: date) -> CloseoutResult:
    handle: WorkflowHandle[Any, CloseoutResult] = await start_closeout(
        h.client, h.config, task_queue=h.task_queue, day=day
    )
    return await handle.result()


async def fulfilled_order(h: Harness, price: str = "25.00") -> tuple[str, str, int]:
    """An order fulfilled end to end by OrderFulfill (capture receipt, Printful order
    confirmed and shipped): (order id, PaymentIntent, Printful order id)."""
    order_id, pi = await h.authorized_order(price)
    handle = await h.start_order(order_id, pi)
    status = await h.status_when(handle.id, lambda s: s.state == "in_production")
    pf_id = int(status.detail["printful_order_id"])
    tracking = await ship_printful(h.sandbox.control, pf_id)
    fulfil = h.client.get_workflow_handle(handle.id, result_type=OrderFulfillResult)
    await fulfil.signal(
        "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
    )
    assert (await fulfil.result()).state == "completed"
    return order_id, pi, pf_id


async def refund_outside(h: Harness, pi: str, amount: int) -> str:
    """A refund made straight through Stripe (the dashboard): no receipt of ours."""
    refund = await h.clients.stripe.create_refund(
        payment_intent_id=pi, idempotency_key=f"outside-{uuid.uuid4()}", amount=amount
    )
    return refund.id


async def stripe_balance(h: Harness, day: date) -> list[BalanceTransactionInfo]:
    """The sandbox's balance transactions of the day, as Stripe's API lists them."""
    start, end = day_window(day, h.config.closeout.timezone)
    found: list[BalanceTransactionInfo] = []
    after: str | None = None
    while True:
        page = await h.clients.stripe.list_balance_transactions(
            created_gte=int(start.timestamp()),
            created_lt=int(end.timestamp()),
            starting_after=after,
        )
        found.extend(page.transactions)
        if not page.has_more:
            return found
        after = page.transactions[-1].id


async def metrics_of(h: Harness, day: date) -> dict[str, tuple[str, str | None]]:
    rows = await fetch_metrics(h.db, h.tenant, day, day)
    return {r["metric"]: (str(r["value"]), r["currency"]) for r in rows}


async def report_of(h: Harness, day: date) -> dict[str, Any]:
    rows = await fetch_reports(h.db, h.tenant, day, day)
    assert len(rows) == 1
    return rows[0]


def utcnow() -> datetime:
    return datetime.now(UTC)
