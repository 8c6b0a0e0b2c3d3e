"""How a side-effecting tool activity runs: verify the call came through the kernel,
execute once per idempotency key, write the receipt, return the output.

    runner = SideEffectRunner(db)
    return await runner.run(ctx, input, CapturePaymentOutput, activity_id, call_stripe)

``call_stripe`` gets the external key from ``ctx.external_key`` and returns a
``ProviderResult``. A duplicate within the window returns the recorded output without
calling it. The receipt is written in the transaction that records the key as
succeeded (one transaction after the provider call, not two): both are stored or
neither. A receipt that cannot be written fails the attempt (retryable), the key is
released, and the retry resends the same external key, so the provider does the work
once. The order's row for the move before the call, when it rides with it, goes in the
claim's transaction (``riding_projection.take_row_for_claim``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Generic, TypeVar

import psycopg
from pydantic import BaseModel, ConfigDict
from temporalio import activity

from autobiz.breakers.outcome import provider_not_called
from autobiz.db.database import Database, TenantSession
from autobiz.errors import AutobizError
from autobiz.ledger.idempotency_store import (
    DEFAULT_WINDOW,
    Clock,
    IdempotencyInProgressError,
    IdempotencyStore,
    utc_now,
)
from autobiz.ledger.order_state import OrderStateRows
from autobiz.ledger.receipts import ReceiptDraft, ReceiptStore, ReceiptWriteError
from autobiz.ledger.riding_projection import (
    projection_taken,
    take_row_for_claim,
    take_row_for_finish,
)
from kernel.codes import ErrorCode
from kernel.contracts import CallContext
from kernel.idempotency import keys_for, request_hash
from kernel.metrics import record_idempotency, record_receipt

OutT = TypeVar("OutT", bound=BaseModel)
log = logging.getLogger(__name__)


class GateBypassedError(AutobizError):
    """Non-retryable: the call's keys do not match its content (not from kernel_call)."""

    code = ErrorCode.GATE_BYPASSED


class ProjectionNotWrittenError(AutobizError):
    """Retryable: the call carries a projection row that no ``RidingProjection`` took (a
    worker built without it); another worker's attempt writes it."""

    code = ErrorCode.PROJECTION_NOT_WRITTEN


class ProviderResult(BaseModel, Generic[OutT]):
    model_config = ConfigDict(frozen=True)

    output: OutT
    provider_object_id: str | None = None
    status: str = "succeeded"
    amount_minor: int | None = None
    currency: str | None = None
    details: dict[str, Any] = {}


# The call the running activity serves (set by ``verify_call``, which every tool activity
# runs first), so its error mapping can honour the call's terms (``not_found_grace``).
# Each activity runs in its own task, so the value never leaks into another call.
_CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("autobiz_current_call", default=None)


def current_call() -> CallContext | None:
    """The verified call this activity is serving, if any."""
    return _CURRENT_CALL.get()


def verify_call(ctx: CallContext, input: BaseModel) -> None:
    """Refuse a call whose idempotency keys were not computed from its own content, or
    whose projection row nothing wrote (``autobiz.ledger.riding_projection``)."""
    if ctx.projection is not None and ctx.projection.tenant_id != ctx.tenant_id:
        raise GateBypassedError(f"{ctx.ref}: the order_state row is for another tenant")
    if ctx.projection is not None and not projection_taken():
        raise ProjectionNotWrittenError(
            f"{ctx.ref}: the call carries an order_state row and this worker has no "
            "RidingProjection interceptor to write it"
        )
    input_json = input.model_dump(mode="json")
    keys = keys_for(
        tenant=ctx.tenant_id,
        workflow_id=ctx.workflow_id,
        step=ctx.step,
        tool=ctx.ref,
        input=input_json,
    )
    if keys.internal != ctx.internal_key or keys.external != ctx.external_key:
        raise GateBypassedError(f"{ctx.ref}: idempotency keys do not match the call")
    if request_hash(ctx.ref, input_json) != ctx.request_hash:
        raise GateBypassedError(f"{ctx.ref}: request hash does not match the call")
    _CURRENT_CALL.set(ctx)


def attempt_lease() -> timedelta | None:
    """Inside an activity, its start-to-close timeout: Temporal starts the next attempt
    only after this one has timed out, so an older in-progress claim is abandoned."""
    if not activity.in_activity():
        return None
    return activity.info().start_to_close_timeout


class SideEffectRunner:
    def __init__(
        self, db: Database, *, window: timedelta = DEFAULT_WINDOW, clock: Clock = utc_now
    ) -> None:
        self.idempotency = IdempotencyStore(db, window=window, clock=clock)
        self.receipts = ReceiptStore(db)
        self.rows = OrderStateRows(db)

    async def run(
        self,
        ctx: CallContext,
        input: BaseModel,
        output_model: type[OutT],
        activity_id: str,
        execute: Callable[[], Awaitable[ProviderResult[OutT]]],
    ) -> OutT:
        verify_call(ctx, input)
        drafts: list[ReceiptDraft] = []  # the executed call's receipt, once it has one

        async def write_with_result(session: TenantSession) -> None:
            """The receipt, and the order's row for the move after this call (if the
            call carries one: ``ProjectionWrite.with_result``), in the finish's
            transaction."""
            if drafts:
                await self.receipts.write_in(session, drafts[0])
            row = take_row_for_finish()
            if row is not None:
                await self.rows.ride_in(session, row)

        before = take_row_for_claim()
        before_in = False  # the row went into the claim's transaction

        async def write_with_claim(session: TenantSession) -> None:
            """The order's row for the move before this call, in the claim's transaction.
            A ride never fails the call: a row that cannot be written is rolled back to
            the savepoint and left to the interceptor."""
            nonlocal before_in
            assert before is not None
            try:
                async with session.savepoint():
                    await self.rows.ride_in(session, before.write)
            except (AutobizError, psycopg.Error) as exc:
                log.warning("order_state row not written with %s's claim: %r", ctx.ref, exc)
                return
            before_in = True

        def claimed() -> None:
            """The claim committed: the row (if it went in) is stored."""
            if before is not None and before_in:
                before.stored = True

        async def once() -> dict[str, Any]:
            claimed()
            return await self._once(ctx, activity_id, execute, drafts)

        try:
            outcome = await self.idempotency.run(
                ctx.tenant_id,
                internal_key=ctx.internal_key,
                external_key=ctx.external_key,
                tool=ctx.ref,
                execute=once,
                lease=attempt_lease(),
                also=write_with_result if ctx.side_effect.needs_receipt else None,
                with_claim=write_with_claim if before is not None else None,
            )
        except IdempotencyInProgressError:
            record_idempotency(ctx, "in_progress")
            raise
        except ReceiptWriteError:
            record_receipt(ctx, "failed")
            raise
        except (AutobizError, psycopg.Error) as exc:
            if not drafts:
                raise
            # The provider did the work; the finish (and its receipt) did not commit.
            record_receipt(ctx, "failed")
            raise ReceiptWriteError(
                f"could not store the receipt for {ctx.ref}: {type(exc).__name__}"
            ) from exc
        claimed()  # answered from the store: the claim committed too
        if outcome.replayed:
            record_idempotency(ctx, "replayed")
            provider_not_called()  # a breaker probe answered so proves nothing
        elif drafts:
            record_receipt(ctx, "written")
        return output_model.model_validate(outcome.result)

    async def _once(
        self,
        ctx: CallContext,
        activity_id: str,
        execute: Callable[[], Awaitable[ProviderResult[OutT]]],
        drafts: list[ReceiptDraft],
    ) -> dict[str, Any]:
        """The provider work: its output is what the idempotency store keeps and answers
        a repeat with; its receipt (a side effect that needs one) goes to ``drafts``."""
        try:
            result = await execute()
        except BaseException:
            record_idempotency(ctx, "failed")
            raise
        record_idempotency(ctx, "executed")
        if ctx.side_effect.needs_receipt:
            drafts.append(_receipt_draft(ctx, activity_id, result))
        return result.output.model_dump(mode="json")


def _receipt_draft(ctx: CallContext, activity_id: str, result: ProviderResult[Any]) -> ReceiptDraft:
    """The receipt of one executed call: who called, with which keys, what came back."""
    return ReceiptDraft(
        tenant_id=ctx.tenant_id,
        workflow_id=ctx.workflow_id,
        run_id=ctx.run_id,
        activity_id=activity_id,
        tool=ctx.tool,
        tool_version=ctx.version,
        side_effect=ctx.side_effect,
        internal_key=ctx.internal_key,
        external_key=ctx.external_key,
        request_hash=ctx.request_hash,
        provider=ctx.provider,
        provider_object_id=result.provider_object_id,
        status=result.status,
        amount_minor=result.amount_minor,
        currency=result.currency,
        details=result.details,
    )
