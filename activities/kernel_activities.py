"""The kernel's own activity: persist a run's trace (called by ``kernel.call.persist_trace``)."""

from __future__ import annotations

from temporalio import activity

from autobiz.db.database import Database
from autobiz.ledger.traces import TraceStore
from kernel.call import PERSIST_TRACE_ACTIVITY, TraceBatch


class KernelActivities:
    def __init__(self, db: Database) -> None:
        self._traces = TraceStore(db)

    @activity.defn(name=PERSIST_TRACE_ACTIVITY)
    async def persist_trace(self, batch: TraceBatch) -> int:
        return await self._traces.persist(
            batch.tenant_id, batch.workflow_id, batch.run_id, batch.entries
        )
