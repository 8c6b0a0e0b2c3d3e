"""What the Reconciliation workflow reads and writes outside the providers' tools.

* :class:`ReconciliationActivities` (plumbing, our own database through ``Database.tenant``
  so RLS scopes every statement): which orders and payments a run checks
  (``autobiz.reconcile_scope``), the drift rows it writes (``autobiz.reconcile_record``)
  and their resolution (``autobiz.reconcile_resolve``).
* :class:`RefundReadActivities`: the READ tool ``stripe.list_refunds@1`` (no receipt).

Rows are keyed by ``(tenant, kind, entity_ref)`` (migration 0004): a retried activity, the
next scheduled run or a re-run of the same window finds the row it wrote before and only
notes that it saw it again. A resolution only moves a row from the statuses the caller
names, so a retry after a commit whose answer was lost changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from autobiz.db.database import Database, TenantSession
from kernel.codes import ErrorCode
from kernel.metrics import record_drift_detected, record_drift_resolved
from kernel.redaction import redact_value
from workflows.reconciliation.models import (
    RECONCILE_RECORD,
    RECONCILE_RESOLVE,
    RECONCILE_SCOPE,
    DriftBatch,
    DriftResolve,
    DriftResolved,
    DriftRow,
    DriftRows,
    OrderView,
    PaymentView,
    ReconcileScope,
    ScopeRequest,
)

CAPTURE_TOOL = "stripe.capture_payment"
REFUND_TOOL = "stripe.create_refund"
RESOLVED = ("repaired", "dismissed")

ROW_COLUMNS = (
    "drift_id, kind, entity_ref, order_id, financial, expected, actual, action, status, "
    "run_id, COALESCE(last_run_id, run_id) AS last_run_id, seen_count, detected_at, "
    "resolved_at, details"
)

# Orders a run looks at: touched in the window (projection or receipts), behind a
# PaymentIntent Stripe shows refunds for in the window, or with a drift still open.
_CANDIDATES = """
WITH candidates AS (
    SELECT order_id FROM order_state
     WHERE tenant_id = %(t)s AND updated_at BETWEEN %(start)s AND %(end)s
    UNION
    SELECT details->>'order_id' FROM receipts
     WHERE tenant_id = %(t)s AND created_at BETWEEN %(start)s AND %(end)s
    UNION
    SELECT details->>'order_id' FROM receipts
     WHERE tenant_id = %(t)s AND tool = 'stripe.capture_payment'
       AND provider_object_id = ANY(%(pis)s)
    UNION
    SELECT order_id FROM reconciliation
     WHERE tenant_id = %(t)s AND status IN ('open', 'pending_approval')
)
SELECT order_id FROM candidates WHERE order_id IS NOT NULL
 ORDER BY order_id LIMIT %(limit)s
"""


def drift_row(row: dict[str, Any]) -> DriftRow:
    return DriftRow.model_validate(row)


async def fetch_drift_rows(
    db: Database,
    tenant_id: str,
    *,
    statuses: Sequence[str] | None = None,
    limit: int = 500,
) -> list[DriftRow]:
    """The tenant's drift rows (``statuses`` None: all), newest first. For the CLI and tests."""
    async with db.tenant(tenant_id) as s:
        rows = await s.fetch_all(
            f"SELECT {ROW_COLUMNS} FROM reconciliation WHERE tenant_id = %s "
            "AND (%s::text[] IS NULL OR status = ANY(%s::text[])) "
            "ORDER BY detected_at DESC, drift_id DESC LIMIT %s",
            (
                tenant_id,
                None if statuses is None else list(statuses),
                None if statuses is None else list(statuses),
                limit,
            ),
        )
    return [drift_row(r) for r in rows]


class ReconciliationActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name=RECONCILE_SCOPE)
    async def load_scope(self, req: ScopeRequest) -> ReconcileScope:
        """The orders (projection rows) and payments (capture receipts) a run checks."""
        params = {
            "t": req.tenant_id,
            "start": req.window_start,
            "end": req.window_end,
            "pis": list(req.payment_intents),
            "limit": req.max_orders + 1,
        }
        async with self._db.tenant(req.tenant_id) as s:
            ids = [r["order_id"] for r in await s.fetch_all(_CANDIDATES, params)]
            truncated = len(ids) > req.max_orders
            ids = ids[: req.max_orders]
            orders = await s.fetch_all(
                "SELECT order_id, state, version, data FROM order_state "
                "WHERE tenant_id = %s AND order_id = ANY(%s) ORDER BY order_id",
                (req.tenant_id, ids),
            )
            payments = await self._payments(s, req.tenant_id, ids, list(req.payment_intents))
        return ReconcileScope(
            orders=tuple(_order_view(o) for o in orders),
            payments=tuple(payments),
            truncated=truncated,
        )

    @staticmethod
    async def _payments(
        s: TenantSession, tenant_id: str, order_ids: list[str], payment_intents: list[str]
    ) -> list[PaymentView]:
        captures = await s.fetch_all(
            "SELECT DISTINCT ON (provider_object_id) provider_object_id AS pi, "
            "details->>'order_id' AS order_id, amount_minor, currency FROM receipts "
            "WHERE tenant_id = %s AND tool = %s AND status = 'succeeded' "
            "AND provider_object_id IS NOT NULL "
            "AND (details->>'order_id' = ANY(%s) OR provider_object_id = ANY(%s)) "
            "ORDER BY provider_object_id, receipt_id DESC",
            (tenant_id, CAPTURE_TOOL, order_ids, payment_intents),
        )
        orders = sorted({c["order_id"] for c in captures if c["order_id"]})
        refunds = await s.fetch_all(
            "SELECT details->>'order_id' AS order_id, provider_object_id FROM receipts "
            "WHERE tenant_id = %s AND tool = %s AND details->>'order_id' = ANY(%s) "
            "AND provider_object_id IS NOT NULL ORDER BY receipt_id",
            (tenant_id, REFUND_TOOL, orders),
        )
        accounted: dict[str, list[str]] = {}
        for r in refunds:
            accounted.setdefault(r["order_id"], []).append(r["provider_object_id"])
        views = []
        for c in captures:
            view = PaymentView(
                payment_intent_id=c["pi"],
                order_id=c["order_id"],
                captured_minor=int(c["amount_minor"] or 0),
                currency=str(c["currency"]).strip(),
                accounted_refunds=tuple(accounted.get(c["order_id"], ())),
            )
            views.append(view)
        return views

    @activity.defn(name=RECONCILE_RECORD)
    async def record(self, batch: DriftBatch) -> DriftRows:
        """Insert each drift, or note that this run saw a known one again."""
        rows: list[DriftRow] = []
        async with self._db.tenant(batch.tenant_id) as s:
            for d in batch.drifts:
                row = await s.fetch_one(
                    "INSERT INTO reconciliation (tenant_id, run_id, last_run_id, kind, order_id, "
                    "entity_ref, financial, expected, actual, action, status) VALUES "
                    "(%(t)s, %(run)s, %(run)s, %(kind)s, (SELECT o.order_id FROM order_state o "
                    " WHERE o.tenant_id = %(t)s AND o.order_id = %(order)s), %(ref)s, "
                    " %(financial)s, %(expected)s, %(actual)s, %(action)s, 'open') "
                    "ON CONFLICT (tenant_id, kind, entity_ref) DO UPDATE SET "
                    "last_run_id = EXCLUDED.last_run_id, last_seen_at = now(), "
                    "seen_count = reconciliation.seen_count + CASE WHEN "
                    "  COALESCE(reconciliation.last_run_id, reconciliation.run_id) = "
                    "  EXCLUDED.last_run_id THEN 0 ELSE 1 END, "
                    "actual = CASE WHEN reconciliation.status = 'open' THEN EXCLUDED.actual "
                    "  ELSE reconciliation.actual END "
                    # xmax = 0: this statement inserted the row (a re-sighting updates it).
                    f"RETURNING {ROW_COLUMNS}, (xmax = 0) AS inserted",
                    {
                        "t": batch.tenant_id,
                        "run": batch.run_id,
                        "kind": d.kind,
                        "order": d.order_id,
                        "ref": d.entity_ref,
                        "financial": d.financial,
                        "expected": Jsonb(redact_value(d.expected)),
                        "actual": Jsonb(redact_value(d.actual)),
                        "action": d.action,
                    },
                )
                assert row is not None
                if row.pop("inserted"):
                    record_drift_detected(batch.tenant_id, d.kind)
                rows.append(drift_row(row))
        if rows:
            activity.logger.info(
                "reconciliation %s: %d drift row(s) (%s)",
                batch.run_id,
                len(rows),
                ", ".join(sorted({r.kind for r in rows})),
            )
        return DriftRows(rows=tuple(rows))

    @activity.defn(name=RECONCILE_RESOLVE)
    async def resolve(self, req: DriftResolve) -> DriftResolved:
        """Move one row to ``req.status`` if it is in ``req.from_statuses``."""
        async with self._db.tenant(req.tenant_id) as s:
            # ``before``: the status the row had (a move to the status it has is no change).
            row = await s.fetch_one(
                "UPDATE reconciliation SET status = %(status)s, action = %(action)s, "
                "resolved_at = CASE WHEN %(status)s = ANY(%(resolved)s) THEN now() END, "
                "details = details || %(details)s "
                "FROM (SELECT drift_id AS before_id, status AS before FROM reconciliation "
                "      WHERE tenant_id = %(t)s AND drift_id = %(id)s FOR UPDATE) b "
                "WHERE tenant_id = %(t)s AND drift_id = b.before_id AND status = ANY(%(from)s) "
                f"RETURNING {ROW_COLUMNS}, b.before",
                {
                    "status": req.status,
                    "action": req.action,
                    "resolved": list(RESOLVED),
                    "details": Jsonb(redact_value(req.details)),
                    "t": req.tenant_id,
                    "id": req.drift_id,
                    "from": list(req.from_statuses),
                },
            )
            if row is not None:
                before = row.pop("before")
                resolved = drift_row(row)
                if before != resolved.status:
                    record_drift_resolved(req.tenant_id, resolved.kind, resolved.status)
                return DriftResolved(row=resolved, changed=True)
            current = await s.fetch_one(
                f"SELECT {ROW_COLUMNS} FROM reconciliation WHERE tenant_id = %s AND drift_id = %s",
                (req.tenant_id, req.drift_id),
            )
        if current is None:
            raise ApplicationError(
                f"drift {req.drift_id} does not exist for tenant {req.tenant_id}",
                type=ErrorCode.DRIFT_NOT_FOUND,
                non_retryable=True,
            )
        return DriftResolved(row=drift_row(current), changed=False)


def _order_view(row: dict[str, Any]) -> OrderView:
    data = dict(row["data"] or {})
    raw = data.get("printful_order_id")
    try:
        printful_id = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        printful_id = None
    workflow_id = data.get("workflow_id")
    return OrderView(
        order_id=row["order_id"],
        state=row["state"],
        version=int(row["version"]),
        printful_order_id=printful_id,
        workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        data=data,
    )
