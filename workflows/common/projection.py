"""The ``order_state`` row (DESIGN §4 projections) as one run writes it.

Several flows write the same order's row (OrderFulfill, then PaymentFailure or the
cancellation), each with optimistic locking on the row's version. A run that knows the
row is new starts at version 0 and reads only after a conflict, so its happy path issues
no extra command; a run that joins an order another flow started reads first. The data
written keeps what the row held (the last read) and adds this run's fields.

Deterministic: used by workflow modules only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from kernel.call import internal_activity
    from kernel.codes import ErrorCode
    from workflows.common.models import (
        ORDER_STATE_READ,
        ORDER_STATE_WRITE,
        OrderStateKey,
        OrderStateRow,
        OrderStateWrite,
        OrderStateWritten,
    )

DB_TIMEOUT = timedelta(seconds=30)


class OrderProjection:
    def __init__(
        self,
        tenant_id: str,
        order_id: str,
        *,
        read_first: bool,
        attempts: int = 3,
        give_up: bool = False,
    ) -> None:
        """``give_up``: after ``attempts`` conflicts stop writing (False is returned)
        instead of failing the run."""
        self.key = OrderStateKey(tenant_id=tenant_id, order_id=order_id)
        self.version: int | None = None if read_first else 0
        self.base: dict[str, Any] = {}
        self.attempts = attempts
        self.give_up = give_up

    async def write(self, state: str, data: dict[str, Any]) -> bool:
        for attempt in range(1, self.attempts + 1):
            if self.version is None:
                row = await internal_activity(
                    ORDER_STATE_READ, self.key, result_type=OrderStateRow, limit=DB_TIMEOUT
                )
                assert row is not None
                self.version, self.base = row.version, dict(row.data)
            try:
                written = await internal_activity(
                    ORDER_STATE_WRITE,
                    OrderStateWrite(
                        tenant_id=self.key.tenant_id,
                        order_id=self.key.order_id,
                        state=state,
                        expected_version=self.version,
                        data={**self.base, **data},
                    ),
                    result_type=OrderStateWritten,
                    limit=DB_TIMEOUT,
                )
            except ActivityError as exc:
                cause = exc.cause
                if not (
                    isinstance(cause, ApplicationError)
                    and cause.type == ErrorCode.ORDER_STATE_CONFLICT
                ):
                    raise
                self.version = None  # someone else wrote: read again
                if attempt == self.attempts:
                    if self.give_up:
                        return False
                    raise
                continue
            assert written is not None
            self.version = written.version
            return True
        return False
