"""Reading the ``order_state`` projection (our own database, through RLS).

A flow that takes over an order another flow has been projecting (OrderCancellation
after OrderFulfill) reads the row first and continues from its version, so the
optimistic lock in ``autobiz.order_state_write`` holds across flows.
"""

from __future__ import annotations

from temporalio import activity

from autobiz.db.database import Database
from workflows.common.models import ORDER_STATE_READ, OrderStateKey, OrderStateRow


class OrderStateActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name=ORDER_STATE_READ)
    async def read_order_state(self, key: OrderStateKey) -> OrderStateRow:
        """The row, or version 0 (state ``""``) when the order has none yet."""
        async with self._db.tenant(key.tenant_id) as s:
            row = await s.fetch_one(
                "SELECT version, state, data FROM order_state "
                "WHERE tenant_id = %s AND order_id = %s",
                (key.tenant_id, key.order_id),
            )
        if row is None:
            return OrderStateRow(version=0, state="")
        return OrderStateRow(version=row["version"], state=row["state"], data=row["data"] or {})
