"""What the flows that find drift do the same way: their first search attributes, drift
rows recorded and moved through the database, and the error text they record.

Deterministic: imported by workflow modules only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
    from kernel.call import internal_activity
    from workflows.reconciliation.models import (
        RECONCILE_RECORD,
        RECONCILE_RESOLVE,
        Drift,
        DriftBatch,
        DriftResolve,
        DriftResolved,
        DriftRow,
        DriftRows,
        DriftStatus,
    )

DB_TIMEOUT = timedelta(seconds=30)


def mark_started(tenant_id: str, state: str, order_id: str | None = None) -> None:
    """The run's first search attributes, the order only when there is one. Called right
    before ``_begin`` (which is given no order): a reconciliation run has none, a drift
    may have none, and these histories set them in this order, in one command."""
    updates: list[SearchAttributeUpdate[Any]] = [
        TENANT_ID.value_set(tenant_id),
        FLOW_STATE.value_set(state),
        APPROVAL_PENDING.value_set(False),
    ]
    if order_id:
        updates.append(ORDER_ID.value_set(order_id))
    workflow.upsert_search_attributes(updates)


async def record(tenant_id: str, drifts: list[Drift]) -> tuple[DriftRow, ...]:
    """One row per drift ever, under this run's id: the rows as they stand (known ones
    found and bumped, not added)."""
    recorded = await internal_activity(
        RECONCILE_RECORD,
        DriftBatch(tenant_id=tenant_id, run_id=workflow.info().workflow_id, drifts=tuple(drifts)),
        result_type=DriftRows,
        limit=DB_TIMEOUT,
    )
    assert recorded is not None
    return recorded.rows


async def resolve(
    tenant_id: str,
    drift_id: int,
    status: DriftStatus,
    action: str,
    *,
    from_statuses: tuple[DriftStatus, ...],
    details: dict[str, Any] | None = None,
) -> DriftRow:
    """Move a drift row to ``status`` if it is in one of ``from_statuses``; the row as it
    stands afterwards (unchanged when it had moved on)."""
    resolved = await internal_activity(
        RECONCILE_RESOLVE,
        DriftResolve(
            tenant_id=tenant_id,
            drift_id=drift_id,
            status=status,
            action=action,
            from_statuses=from_statuses,
            details=details or {},
        ),
        result_type=DriftResolved,
        limit=DB_TIMEOUT,
    )
    assert resolved is not None
    return resolved.row


def failure_text(exc: BaseException) -> str:
    """The failure as these flows record it (status ``error``, a row's ``details``): the
    activity's cause, without the ``CODE:`` prefix ``describe`` adds."""
    return str(exc.cause if isinstance(exc, ActivityError) else exc)
