"""The kernel's own activities: persist a run's trace (called by
``kernel.call.persist_trace``), with the run's last projection row when it rides along,
in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from autobiz.db.database import Database
from autobiz.ledger.order_state import OrderStateRows
from autobiz.ledger.traces import TraceStore
from kernel.call import PERSIST_TRACE_ACTIVITY, PERSIST_TRACE_WITH_ROW_ACTIVITY, TraceBatch


class KernelActivities:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._traces = TraceStore(db)
        self._order_state = OrderStateRows(db)

    @activity.defn(name=PERSIST_TRACE_ACTIVITY)
    async def persist_trace(self, batch: TraceBatch) -> int:
        return await self._persist(batch)

    @activity.defn(name=PERSIST_TRACE_WITH_ROW_ACTIVITY)
    async def persist_trace_with_row(self, batch: TraceBatch) -> int:
        return await self._persist(batch)

    def all(self) -> list[Callable[..., Any]]:
        return [self.persist_trace, self.persist_trace_with_row]

    async def _persist(self, batch: TraceBatch) -> int:
        async with self._db.tenant(batch.tenant_id) as s:
            if batch.projection is not None:
                await self._order_state.ride_in(s, batch.projection)
            return await self._traces.persist_in(
                s, batch.tenant_id, batch.workflow_id, batch.run_id, batch.entries
            )
