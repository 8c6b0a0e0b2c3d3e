"""The projection row that rides with a tool call: one Temporal activity interceptor.

A flow that moves to a state and calls a tool straight after (OrderFulfill: ``assessing``
then ``risk.assess``) hands the row to that call (``CallContext.projection``) instead of
scheduling ``autobiz.order_state_write`` first: one activity, one workflow task and six
history events fewer per move (bench/README.md, issue 15). The worker writes the row
before the tool runs, as the separate activity did.

A ride that cannot be written (the database is down) does not fail the tool call: the
row lags by one state and the run's next write merges over it (the standalone write
reads the row on its version conflict, a ride merges anyway). The run's last row rides
with its trace, whose activity retries until both are stored.

A row marked ``with_result`` is for the move that follows the call's success
(OrderFulfill's ``in_production`` after the Printful confirm): it is not written before
the call but handed to the side effect's finish transaction (``take_row_for_finish``),
where it is stored with the receipt and the key's ``succeeded``, or not at all. A call
that has no such finish (a read, or a result answered from the idempotency store)
writes it here once it has succeeded; a failed call never writes it.

A row for a call with a side effect (the move *before* a capture, a Printful order, a
Shopify fulfilment) is handed to that call's idempotency claim instead
(``take_row_for_claim``): stored in the claim's transaction, before the provider is
called, one transaction fewer per such call. A call whose claim did not commit (the same
call running elsewhere, the database down, an activity that claims nothing) gets it
written here after, as the best effort it always was.

``verify_call`` refuses a call with a projection that no interceptor took
(``PROJECTION_NOT_WRITTEN``): a worker built without it fails loudly, never silently
drops the rows. A row for another tenant than the call's is never written, and the
call is refused as ``GATE_BYPASSED`` (non-retryable), like keys that do not match it.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

import psycopg
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from autobiz.db.database import Database
from autobiz.errors import AutobizError
from autobiz.ledger.order_state import OrderStateRows
from kernel.contracts import CallContext, ProjectionWrite

log = logging.getLogger(__name__)

# Set while the activity whose projection this interceptor took runs.
_TAKEN: ContextVar[bool] = ContextVar("autobiz_projection_taken", default=False)
# The ``with_result`` row the running activity's finish transaction may write.
_FOR_FINISH: ContextVar[_ForFinish | None] = ContextVar("autobiz_row_for_finish", default=None)
# The row (the move before a side effect) the running activity's claim may write.
_FOR_CLAIM: ContextVar[RowForClaim | None] = ContextVar("autobiz_row_for_claim", default=None)


class _ForFinish:
    def __init__(self, write: ProjectionWrite) -> None:
        self.write = write
        self.taken = False


class RowForClaim:
    """The row the claim's transaction writes; ``stored`` once that transaction has
    committed with it (the interceptor then writes nothing)."""

    def __init__(self, write: ProjectionWrite) -> None:
        self.write = write
        self.stored = False


def projection_taken() -> bool:
    """The running activity's projection row was handled by the interceptor."""
    return _TAKEN.get()


def take_row_for_finish() -> ProjectionWrite | None:
    """The ``with_result`` row, for the finish transaction of the call that is running
    (once: the interceptor then leaves it to that transaction); None: no row waits."""
    waiting = _FOR_FINISH.get()
    if waiting is None or waiting.taken:
        return None
    waiting.taken = True
    return waiting.write


def take_row_for_claim() -> RowForClaim | None:
    """The row for the idempotency claim of the side effect that is running; None: no
    row waits, or it is stored already (a second claim in the same activity)."""
    waiting = _FOR_CLAIM.get()
    return None if waiting is None or waiting.stored else waiting


class RidingProjection(Interceptor):
    """``Worker(interceptors=[RidingProjection(db), ...])``, first in the list."""

    def __init__(self, db: Database) -> None:
        self.rows = OrderStateRows(db)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Riding(next, self.rows)


class _Riding(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, rows: OrderStateRows) -> None:
        super().__init__(next)
        self._rows = rows

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        ctx = input.args[0] if input.args else None
        if not isinstance(ctx, CallContext) or ctx.projection is None:
            return await super().execute_activity(input)
        write = ctx.projection
        if write.tenant_id != ctx.tenant_id:
            # Another tenant's row: never written; ``verify_call`` refuses the call.
            return await super().execute_activity(input)
        if write.with_result:
            return await self._with_result(input, ctx, write)
        if ctx.side_effect.needs_receipt:
            return await self._with_claim(input, ctx, write)
        await self._write(write, ctx, "before")
        token = _TAKEN.set(True)
        try:
            return await super().execute_activity(input)
        finally:
            _TAKEN.reset(token)

    async def _with_result(
        self, input: ExecuteActivityInput, ctx: CallContext, write: ProjectionWrite
    ) -> Any:
        waiting = _ForFinish(write)
        taken, for_finish = _TAKEN.set(True), _FOR_FINISH.set(waiting)
        try:
            result = await super().execute_activity(input)
        finally:
            _FOR_FINISH.reset(for_finish)
            _TAKEN.reset(taken)
        if not waiting.taken:  # no finish transaction wrote it
            await self._write(write, ctx, "after")
        return result

    async def _with_claim(
        self, input: ExecuteActivityInput, ctx: CallContext, write: ProjectionWrite
    ) -> Any:
        waiting = RowForClaim(write)
        taken, for_claim = _TAKEN.set(True), _FOR_CLAIM.set(waiting)
        cancelled = False
        try:
            return await super().execute_activity(input)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            _FOR_CLAIM.reset(for_claim)
            _TAKEN.reset(taken)
            if not (waiting.stored or cancelled):  # no claim committed it
                await self._write(write, ctx, "after")

    async def _write(self, write: ProjectionWrite, ctx: CallContext, when: str) -> None:
        try:
            await self._rows.ride(write)
        except (AutobizError, psycopg.Error) as exc:
            log.warning(
                "order_state %s not written %s %s (the next write catches up): %s",
                write.order_id,
                when,
                ctx.ref,
                exc,
            )
