"""The closeout context's models: what DailyCloseout plans (the tenant-local days it
closes, their UTC windows), reads from our ledger, writes (daily_metrics rows and the CSV
report) and returns; and the pure day arithmetic the starter, the activities and the
workflow share (DST-correct through ``zoneinfo``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from kernel.frozen import Frozen
from workflows.common.models import FlowContext

# Plumbing: our own database only.
CLOSEOUT_PLAN = "autobiz.closeout_plan"
CLOSEOUT_LEDGER = "autobiz.closeout_ledger"
CLOSEOUT_WRITE = "autobiz.closeout_write"
CLOSEOUT_LINK = "autobiz.closeout_link"


# -- the tenant's days --------------------------------------------------------------------


def day_window(day: date, timezone: str) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the tenant-local ``day``: local midnight to the next
    local midnight (23 or 25 hours on a DST change)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_ended_day(now: datetime, timezone: str) -> date:
    """The latest tenant-local day that has fully ended at ``now``: yesterday, locally."""
    return now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


class DayWindow(Frozen):
    day: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, day: date, timezone: str) -> DayWindow:
        start, end = day_window(day, timezone)
        return cls(day=day, start=start, end=end)


# -- inputs and plans ---------------------------------------------------------------------


class CloseoutInput(BaseModel):
    """One day (``day`` given: ``autobiz closeout run``, a catch-up child), or the
    schedule's run (``day`` None: the last ended local day and every one of the
    ``catchup_days`` before it that has no report yet, each as its own child run)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    day: date | None = None
    timezone: str = "UTC"
    catchup_days: int = Field(default=7, ge=0, le=60)
    context: FlowContext | None = None
    principal: str = "system:daily_closeout"
    max_orders: int = Field(default=250, ge=1, le=250)
    link_ttl: timedelta = timedelta(days=7)
    # A capture/refund total that differs by more than this (minor units) is drift.
    tolerance_minor: int = Field(default=0, ge=0)
    acknowledge_roles: tuple[str, ...] = ("finance",)
    acknowledge_timeout: timedelta = timedelta(hours=24)


class PlanRequest(Frozen):
    """``day`` given: that day's window. None: the last local day ended at ``now`` and
    the ``catchup_days`` before it that have no report. (The windows are computed in an
    activity: the time-zone database is I/O, kept out of workflow code.)"""

    tenant_id: str
    timezone: str
    now: datetime
    day: date | None = None
    catchup_days: int = 0


class ClosePlan(Frozen):
    """The days to close, oldest first (a scheduled run: those without a report in the
    catch-up range, and the last ended day always)."""

    days: tuple[DayWindow, ...] = ()
    already_closed: tuple[date, ...] = ()


# -- our ledger ---------------------------------------------------------------------------


class LedgerRequest(Frozen):
    tenant_id: str
    window_start: datetime
    window_end: datetime
    # PaymentIntents behind the refunds Stripe shows in the window.
    payment_intents: tuple[str, ...] = ()


class LedgerPayment(Frozen):
    """A capture of ours (receipt) behind a PaymentIntent, and our refunds of it."""

    payment_intent_id: str
    order_id: str | None = None
    captured_minor: int
    currency: str
    accounted_refunds: tuple[str, ...] = ()


class LedgerDay(Frozen):
    """What our receipts say about the window, per currency (minor units)."""

    captured: dict[str, int] = Field(default_factory=dict)
    refunded: dict[str, int] = Field(default_factory=dict)
    captures: int = 0
    refunds: int = 0
    payments: tuple[LedgerPayment, ...] = ()


# -- what is written ----------------------------------------------------------------------


class MetricRow(Frozen):
    """A ``daily_metrics`` row: ``metric`` is ``{name}:{currency}`` (the table's key has
    no currency column, and a day may have several) or a bare name for counts."""

    metric: str
    value: Decimal
    currency: str | None = None


class CloseoutWrite(Frozen):
    tenant_id: str
    day: date
    timezone: str
    window_start: datetime
    window_end: datetime
    run_id: str
    metrics: tuple[MetricRow, ...]
    csv: str
    summary: dict[str, Any] = Field(default_factory=dict)
    drift_count: int = 0


class CloseoutWritten(Frozen):
    csv_sha256: str
    runs: int
    metrics_written: int
    metrics_removed: int = 0


class LinkRequest(Frozen):
    tenant_id: str
    day: date
    ttl: timedelta


class ReportLink(Frozen):
    url: str
    expires_at: datetime


# -- the result ---------------------------------------------------------------------------


class CurrencyTotals(Frozen):
    """One currency's day from provider truth (minor units)."""

    currency: str
    orders: int = 0
    orders_total_minor: int = 0
    captures: int = 0
    gross_captured_minor: int = 0
    refunds: int = 0
    refunded_minor: int = 0
    stripe_fees_minor: int = 0
    other_balance_minor: int = 0  # adjustments, disputes… (net of their fees)
    net_minor: int = 0
    fulfillment_orders: int = 0
    fulfillment_costs_minor: int = 0
    margin_minor: int = 0


class DayClosed(Frozen):
    day: date
    workflow_id: str
    csv_sha256: str | None = None
    drifts: int = 0
    truncated: bool = False


class CloseoutResult(Frozen):
    workflow_id: str
    tenant_id: str
    day: date | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    totals: tuple[CurrencyTotals, ...] = ()
    metrics: tuple[MetricRow, ...] = ()
    csv_sha256: str | None = None
    report_url: str | None = None
    report_expires_at: datetime | None = None
    runs: int = 0
    drifts: tuple[int, ...] = ()  # reconciliation drift ids raised or seen again
    repairs: dict[str, str] = Field(default_factory=dict)  # drift id -> ReconcileDrift id
    truncated: bool = False
    # A scheduled run: the days it closed, each as its own child run.
    closed: tuple[DayClosed, ...] = ()
    failed_days: tuple[str, ...] = ()  # a scheduled run: days whose run failed
    cost_micros: int = 0
