"""The kernel's own activity: persist a run's trace (called by ``kernel.call.persist_trace``),
and the projection row that rides with it, in one transaction."""

from __future__ import annotations

from temporalio import activity

from autobiz.db.database import Database
from autobiz.ledger.order_state import OrderStateRows
from autobiz.ledger.traces import TraceStore
from kernel.call import PERSIST_TRACE_ACTIVITY, TraceBatch


class KernelActivities:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._traces = TraceStore(db)
        self._order_state = OrderStateRows(db)

    @activity.defn(name=PERSIST_TRACE_ACTIVITY)
    async def persist_trace(self, batch: TraceBatch) -> int:
        async with self._db.tenant(batch.tenant_id) as s:
            if batch.projection is not None:
                await self._order_state.ride_in(s, batch.projection)
            return await self._traces.persist_in(
                s, batch.tenant_id, batch.workflow_id, batch.run_id, batch.entries
            )
