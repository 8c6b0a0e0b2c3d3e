"""What the DailyCloseout reads and writes outside the providers' tools, and the reads
the CLI and the ingress make of what it wrote.

* :class:`CloseoutActivities` (plumbing, through ``Database.tenant`` so RLS scopes every
  statement): the days a run closes (``autobiz.closeout_plan``: windows from the
  time-zone database, days without a report), what our receipts say about a window
  (``autobiz.closeout_ledger``), the day's ``daily_metrics`` and ``closeout_reports`` rows
  (``autobiz.closeout_write``, one transaction) and the report's signed link
  (``autobiz.closeout_link``).
* :func:`fetch_metrics` / :func:`fetch_report`: one tenant's rows (the app role, RLS).
* :func:`admin_metrics`: every tenant's rows, only through ``Database.admin`` and only with
  an ``audit_log`` row in each tenant it read (actor, range, use id).

A re-run of a day rewrites its rows: metrics upserted, the day's metrics the run did not
produce deleted, the report row replaced (``runs`` counts the writes).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb
from temporalio import activity

from autobiz.closeout_links import ReportLinks
from autobiz.db.database import Database
from workflows.closeout.models import (
    CLOSEOUT_LEDGER,
    CLOSEOUT_LINK,
    CLOSEOUT_PLAN,
    CLOSEOUT_WRITE,
    CloseoutWrite,
    CloseoutWritten,
    ClosePlan,
    DayWindow,
    LedgerDay,
    LedgerPayment,
    LedgerRequest,
    LinkRequest,
    PlanRequest,
    ReportLink,
    last_ended_day,
)

CAPTURE_TOOL = "stripe.capture_payment"
REFUND_TOOL = "stripe.create_refund"
METRIC_COLUMNS = "tenant_id, day, metric, value, currency, updated_at"
REPORT_COLUMNS = (
    "tenant_id, day, timezone, window_start, window_end, csv_sha256, summary, drift_count, "
    "run_id, runs, created_at, updated_at"
)
ADMIN_ACTION = "closeout.report.all_tenants"


class CloseoutActivities:
    def __init__(self, db: Database, links: ReportLinks) -> None:
        self._db = db
        self._links = links

    @activity.defn(name=CLOSEOUT_PLAN)
    async def plan(self, req: PlanRequest) -> ClosePlan:
        if req.day is not None:
            return ClosePlan(days=(DayWindow.of(req.day, req.timezone),))
        last = last_ended_day(req.now, req.timezone)
        first = last - timedelta(days=req.catchup_days)
        async with self._db.tenant(req.tenant_id) as s:
            rows = await s.fetch_all(
                "SELECT day FROM closeout_reports WHERE tenant_id = %s AND day BETWEEN %s AND %s",
                (req.tenant_id, first, last - timedelta(days=1)),
            )
        closed = {r["day"] for r in rows}
        days = [first + timedelta(days=i) for i in range(req.catchup_days)]
        missing = [d for d in days if d not in closed]
        return ClosePlan(
            days=tuple(DayWindow.of(d, req.timezone) for d in [*missing, last]),
            already_closed=tuple(sorted(closed)),
        )

    @activity.defn(name=CLOSEOUT_LEDGER)
    async def ledger(self, req: LedgerRequest) -> LedgerDay:
        """Our capture and refund receipts in the window, per currency, and the payments
        (captures of ours) behind the PaymentIntents the window's refunds are on."""
        async with self._db.tenant(req.tenant_id) as s:
            totals = await s.fetch_all(
                "SELECT tool, currency, count(*) AS n, COALESCE(sum(amount_minor), 0) AS total "
                "FROM receipts WHERE tenant_id = %s AND tool = ANY(%s) "
                "AND status IN ('succeeded', 'pending') "
                "AND created_at >= %s AND created_at < %s GROUP BY tool, currency",
                (req.tenant_id, [CAPTURE_TOOL, REFUND_TOOL], req.window_start, req.window_end),
            )
            payments = await s.fetch_all(
                "SELECT c.provider_object_id AS pi, c.details->>'order_id' AS order_id, "
                "c.amount_minor, c.currency, "
                "ARRAY(SELECT r.provider_object_id FROM receipts r WHERE r.tenant_id = c.tenant_id "
                "      AND r.tool = %s AND r.details->>'payment_intent_id' = c.provider_object_id "
                "      ORDER BY r.provider_object_id) AS refunds "
                "FROM receipts c WHERE c.tenant_id = %s AND c.tool = %s "
                "AND c.provider_object_id = ANY(%s) ORDER BY c.provider_object_id",
                (REFUND_TOOL, req.tenant_id, CAPTURE_TOOL, list(req.payment_intents)),
            )
            known = await s.fetch_all(
                "SELECT order_id FROM order_state WHERE tenant_id = %s AND order_id = ANY(%s)",
                (req.tenant_id, [p["order_id"] for p in payments if p["order_id"]]),
            )
        captured: dict[str, int] = {}
        refunded: dict[str, int] = {}
        counts = {CAPTURE_TOOL: 0, REFUND_TOOL: 0}
        for row in totals:
            cur = str(row["currency"]).strip()
            target = captured if row["tool"] == CAPTURE_TOOL else refunded
            target[cur] = target.get(cur, 0) + int(row["total"])
            counts[row["tool"]] += int(row["n"])
        orders = {r["order_id"] for r in known}
        seen: set[str] = set()
        views: list[LedgerPayment] = []
        for p in payments:
            if p["pi"] in seen:
                continue
            seen.add(p["pi"])
            views.append(
                LedgerPayment(
                    payment_intent_id=p["pi"],
                    # Only an order we project (the drift row's foreign key).
                    order_id=p["order_id"] if p["order_id"] in orders else None,
                    captured_minor=int(p["amount_minor"] or 0),
                    currency=str(p["currency"]).strip(),
                    accounted_refunds=tuple(p["refunds"] or ()),
                )
            )
        return LedgerDay(
            captured=captured,
            refunded=refunded,
            captures=counts[CAPTURE_TOOL],
            refunds=counts[REFUND_TOOL],
            payments=tuple(views),
        )

    @activity.defn(name=CLOSEOUT_WRITE)
    async def write(self, req: CloseoutWrite) -> CloseoutWritten:
        """The day's metrics and report, in one transaction (a retry rewrites the same)."""
        digest = hashlib.sha256(req.csv.encode()).hexdigest()
        names = [m.metric for m in req.metrics]
        async with self._db.tenant(req.tenant_id) as s:
            removed = await s.execute(
                "DELETE FROM daily_metrics WHERE tenant_id = %s AND day = %s "
                "AND NOT (metric = ANY(%s))",
                (req.tenant_id, req.day, names),
            )
            for m in req.metrics:
                await s.execute(
                    "INSERT INTO daily_metrics (tenant_id, day, metric, value, currency) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, day, metric) DO UPDATE "
                    "SET value = EXCLUDED.value, currency = EXCLUDED.currency, updated_at = now()",
                    (req.tenant_id, req.day, m.metric, m.value, m.currency),
                )
            runs = await s.fetch_val(
                "INSERT INTO closeout_reports (tenant_id, day, timezone, window_start, "
                "window_end, csv, csv_sha256, summary, drift_count, run_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, day) DO UPDATE SET timezone = EXCLUDED.timezone, "
                "window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, "
                "csv = EXCLUDED.csv, csv_sha256 = EXCLUDED.csv_sha256, "
                "summary = EXCLUDED.summary, drift_count = EXCLUDED.drift_count, "
                "run_id = EXCLUDED.run_id, runs = closeout_reports.runs + 1, "
                "updated_at = now() RETURNING runs",
                (
                    req.tenant_id,
                    req.day,
                    req.timezone,
                    req.window_start,
                    req.window_end,
                    req.csv,
                    digest,
                    Jsonb(req.summary),
                    req.drift_count,
                    req.run_id,
                ),
            )
        return CloseoutWritten(
            csv_sha256=digest,
            runs=int(runs),
            metrics_written=len(req.metrics),
            metrics_removed=removed,
        )

    @activity.defn(name=CLOSEOUT_LINK)
    async def link(self, req: LinkRequest) -> ReportLink:
        url, expires_at = self._links.url(req.tenant_id, req.day, req.ttl)
        return ReportLink(url=url, expires_at=expires_at)


# -- reads for the CLI and the ingress -----------------------------------------------------


async def fetch_metrics(
    db: Database, tenant_id: str, first: date, last: date
) -> list[dict[str, Any]]:
    """One tenant's metrics rows in ``[first, last]`` (RLS: its own only)."""
    async with db.tenant(tenant_id) as s:
        return await s.fetch_all(
            f"SELECT {METRIC_COLUMNS} FROM daily_metrics WHERE tenant_id = %s "
            "AND day BETWEEN %s AND %s ORDER BY day, metric",
            (tenant_id, first, last),
        )


async def fetch_reports(
    db: Database, tenant_id: str, first: date, last: date
) -> list[dict[str, Any]]:
    async with db.tenant(tenant_id) as s:
        return await s.fetch_all(
            f"SELECT {REPORT_COLUMNS} FROM closeout_reports WHERE tenant_id = %s "
            "AND day BETWEEN %s AND %s ORDER BY day",
            (tenant_id, first, last),
        )


async def admin_metrics(
    db: Database, *, actor: str, first: date, last: date, reason: str
) -> tuple[str, list[dict[str, Any]]]:
    """Every tenant's metrics in ``[first, last]``: the named admin path (the owner's
    connection, logged), one tenant at a time under its own RLS scope, and an
    ``audit_log`` row in each tenant read (actor, range, reason, the use's id) written in
    the same transaction as the read. Returns the use id and the rows."""
    use_id = str(uuid.uuid4())
    detail = {
        "use_id": use_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "reason": reason,
    }
    rows: list[dict[str, Any]] = []
    async with db.admin(f"{ADMIN_ACTION} by {actor} {first}..{last}: {reason}") as s:
        tenants = await s.fetch_all("SELECT tenant_id FROM tenants ORDER BY tenant_id")
        for t in tenants:
            tenant_id = t["tenant_id"]
            await s.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
            found = await s.fetch_all(
                f"SELECT {METRIC_COLUMNS} FROM daily_metrics WHERE tenant_id = %s "
                "AND day BETWEEN %s AND %s ORDER BY day, metric",
                (tenant_id, first, last),
            )
            await s.execute(
                "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
                "VALUES (%s, %s, %s, %s, %s)",
                (tenant_id, actor, ADMIN_ACTION, "read", Jsonb({**detail, "rows": len(found)})),
            )
            rows.extend(found)
    return use_id, rows


def metric_value(value: Any) -> str:
    """A ``numeric`` as the CLI shows it (no exponent)."""
    return format(Decimal(value).normalize(), "f") if value is not None else ""
