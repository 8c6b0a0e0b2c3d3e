"""The ``order_state`` row (DESIGN §4 projections) as one run writes it.

Several flows write the same order's row (OrderFulfill, then PaymentFailure or the
cancellation), each with optimistic locking on the row's version. A run that knows the
row is new starts at version 0 and reads only after a conflict, so its happy path issues
no extra command; a run that joins an order another flow started reads first. The data
written keeps what the row held (the last read) and adds this run's fields.

A move followed at once by a tool call (or by the run's end) can let the row *ride*
with that call (``ride``): the worker writes it before the tool runs, merging this run's
fields over the row, so the move costs no activity of its own
(``autobiz.ledger.riding_projection``). A move that follows a call's success and comes
before a wait (``in_production``, once Printful confirmed) can ride *with the result*:
the worker writes it when the call succeeds, in the side effect's finish transaction.
Other moves followed by a wait write at once: the row must say ``awaiting_approval``
while the approval waits.

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
    from kernel.contracts import ProjectionWrite
    from kernel.state import RunState
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
        # The state of a row handed to a call to write with its result (``with_result``).
        self.sent_with_call: str | None = None

    def ride(
        self, run: RunState, state: str, data: dict[str, Any], *, with_result: bool = False
    ) -> bool:
        """Hand the row to the run's next tool call or trace persist (``RunState.carry``);
        False when the row's version is unknown (it must be read: write instead). A ride
        still waiting is replaced: its state never lasted. ``with_result``: the row is
        for the move after the call succeeds, and is written with its result (the move
        then asks ``went_with_call``)."""
        self._take_back(run)
        if self.version is None:
            return False
        if with_result:
            self.sent_with_call = state
        run.carry(
            ProjectionWrite(
                tenant_id=self.key.tenant_id,
                order_id=self.key.order_id,
                state=state,
                expected_version=self.version,
                data=data,
                with_result=with_result,
            )
        )
        self.version += 1  # as the ride will leave it; a conflict later reads the row
        return True

    def went_with_call(self, state: str) -> bool:
        """The row of the move to ``state`` went with the call before it (``ride(...,
        with_result=True)``): the worker wrote it with the call's result."""
        if self.sent_with_call != state:
            return False
        self.sent_with_call = None
        return True

    def _take_back(self, run: RunState | None) -> None:
        """A ride not sent yet is dropped, and the version it counted on given back; a
        row sent with a call before is forgotten (the row now moves on from it)."""
        self.sent_with_call = None
        waiting = None if run is None else run.take_riding()
        if waiting is not None:
            self.version = waiting.expected_version

    async def write(self, state: str, data: dict[str, Any], *, run: RunState | None = None) -> bool:
        """Write the row now (``run``: a ride still waiting in it is replaced by this)."""
        self._take_back(run)
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
