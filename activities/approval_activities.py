"""Our own database, kept in step with the workflows: approval requests (``hitl_requests``)
and the ``order_state`` projection (optimistic version; ``autobiz.ledger.order_state``).

Every write is safe to repeat: an activity retry after a commit whose answer was lost
finds the row already where it should be and succeeds.
"""

from __future__ import annotations

import logging

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from autobiz.approver_keys import load_registry
from autobiz.db.database import Database
from autobiz.ledger.order_state import OrderStateRows
from kernel.codes import ErrorCode
from kernel.decision_proof import ApproverKeyRegistry
from workflows.common.models import (
    HITL_CLOSE,
    HITL_NOTE,
    HITL_OPEN,
    ORDER_STATE_WRITE,
    HitlClose,
    HitlNote,
    HitlOpen,
    OrderStateWrite,
    OrderStateWritten,
)

log = logging.getLogger(__name__)


class ApprovalActivities:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._order_state = OrderStateRows(db)

    @activity.defn(name=HITL_OPEN)
    async def open_request(self, req: HitlOpen) -> ApproverKeyRegistry:
        """Open the request row (idempotent: a re-open finds it) and answer with the
        tenant's approver key registry as of now, the snapshot the workflow checks
        decision proofs against (it is called again to refresh that snapshot)."""
        async with self._db.tenant(req.tenant_id) as s:
            await s.execute(
                "INSERT INTO hitl_requests (request_id, tenant_id, workflow_id, run_id, action, "
                "required_role, amount_minor, currency, status, requested_at, expires_at, "
                "details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s) "
                "ON CONFLICT (tenant_id, request_id) DO NOTHING",
                (
                    req.request_id,
                    req.tenant_id,
                    req.workflow_id,
                    req.run_id,
                    req.action,
                    req.required_role,
                    req.amount_minor,
                    req.currency,
                    req.requested_at,
                    req.expires_at,
                    Jsonb(req.details),
                ),
            )
            return await load_registry(s, req.tenant_id)

    @activity.defn(name=HITL_NOTE)
    async def note(self, note: HitlNote) -> None:
        entry = {
            "kind": note.kind,
            "at": note.at.isoformat(),
            "notified": list(note.notified),
            "level": note.escalation_level,
        }
        async with self._db.tenant(note.tenant_id) as s:
            await s.execute(
                "UPDATE hitl_requests SET escalation_level = GREATEST(escalation_level, %s), "
                "details = jsonb_set(details, '{notes}', "
                "  COALESCE(details->'notes', '[]'::jsonb) || %s::jsonb) "
                "WHERE tenant_id = %s AND request_id = %s AND status = 'pending' "
                "AND NOT COALESCE(details->'notes', '[]'::jsonb) @> %s::jsonb",
                (
                    note.escalation_level,
                    Jsonb([entry]),
                    note.tenant_id,
                    note.request_id,
                    Jsonb([{"kind": note.kind, "at": entry["at"]}]),
                ),
            )
        log.info(
            "approval %s %s (level %d) notified %s",
            note.request_id,
            note.kind,
            note.escalation_level,
            ", ".join(note.notified) or "-",
        )

    @activity.defn(name=HITL_CLOSE)
    async def close_request(self, close: HitlClose) -> None:
        async with self._db.tenant(close.tenant_id) as s:
            changed = await s.execute(
                "UPDATE hitl_requests SET status = %s, decided_by = %s, decided_at = %s, "
                "reason = %s WHERE tenant_id = %s AND request_id = %s AND status = 'pending'",
                (
                    close.status,
                    close.decided_by,
                    close.decided_at,
                    close.reason,
                    close.tenant_id,
                    close.request_id,
                ),
            )
            if changed:
                return
            current = await s.fetch_val(
                "SELECT status FROM hitl_requests WHERE tenant_id = %s AND request_id = %s",
                (close.tenant_id, close.request_id),
            )
        if current != close.status:
            raise ApplicationError(
                f"approval request {close.request_id} is {current}, cannot become {close.status}",
                type=ErrorCode.HITL_STATE_CONFLICT,
                non_retryable=True,
            )

    @activity.defn(name=ORDER_STATE_WRITE)
    async def write_order_state(self, write: OrderStateWrite) -> OrderStateWritten:
        """Move the projection from ``expected_version`` to the next one (optimistic)."""
        return await self._order_state.write(write)
