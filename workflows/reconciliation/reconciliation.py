"""Reconciliation (P1-R27..R30): our receipts and the order projection against provider
truth over a window; every drift recorded in ``reconciliation``; non-financial drift
repaired here, financial drift only ever through a human approval.

**Runs.** Workflow type ``Reconciliation``, id ``reconcile:{tenant}:{window end | run key}``
(``autobiz reconcile run``), or started by the tenant's Temporal Schedule
``reconcile-schedule:{tenant}`` (``autobiz reconcile schedule``; interval and window from
the BusinessConfig ``reconciliation`` section, overlap SKIP). The window is
``[window_start, window_end]``, by default the 24 h before the run started. The policy is
the tenant's ``reconciliation`` workflow config (given, or loaded by the worker).

**Scope.** The orders whose projection or receipts changed in the window, the orders
behind PaymentIntents Stripe shows refunds for in the window (``stripe.list_refunds`` by
creation time: an outside refund weeks after the sale is still seen), and the orders of
drift rows not yet resolved; their captures come from our receipts (at most
``max_orders`` orders per run, the result says when more were left out).

**Checks** (READ tools through ``kernel_call``):

* ``capture_missing`` / ``amount_mismatch`` (financial): a capture receipt says X was
  captured; ``stripe.get_payment_intent`` says the intent is not ``succeeded``, or
  received another amount or currency;
* ``refund_outside`` (financial): ``stripe.list_refunds`` shows a refund on the intent
  (not failed/canceled) that no ``stripe.create_refund`` receipt of ours accounts for;
* ``printful_cancelled_outside`` (non-financial): the projection says the order is in
  production or later, ``printful.get_order`` says ``canceled``.

**Rows.** One per ``(kind, entity_ref)`` ever (migration 0004): a retried activity, the
next run and a re-run of the same window find the row instead of adding one (they bump
``seen_count``/``last_run_id``); a repaired or dismissed drift is never raised again.
Each row has kind, order, entity, financial, expected, actual, action and status
(``open`` → ``repaired`` | ``pending_approval`` → ``repaired`` | ``dismissed`` | ``open``).

**Handling.**

* Non-financial, here: the projection moves to ``exception`` (data ``exception:
  printful_cancelled``) with the optimistic version the run read; a concurrent move
  (``ORDER_STATE_CONFLICT``) leaves the row open for the next run. Ops get one summary
  email per run with new drift. An OrderFulfill still waiting for that order's shipment
  will find the projection moved on (its next write conflicts): the cancelled Printful
  order is an exception for people, which is what the projection now says.
* Financial, in a child ``ReconcileDrift`` workflow per row (id
  ``reconcile-drift:{tenant}:{drift_id}``, parent-close ABANDON, id reuse only after a
  failure; see ``reconcile_drift``): a scheduled run must finish in seconds while an
  approval may wait a day, and a row whose approval is still open must not be asked
  twice.

**Ends** ``completed``; ``failed`` when a read or a row write fails after Temporal's
retries (a provider that no longer knows one entity is skipped, not a failure);
``cancelled`` when cancelled from the Temporal side (the rows written stay the record,
repair children already started go on). The checks themselves are pure, in ``drift``.

Deterministic: I/O only through ``kernel_call`` and ``internal_activity``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
)

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import internal_activity, kernel_call
    from kernel.codes import ErrorCode
    from kernel.tools.printful import PrintfulOrderRef
    from kernel.tools.stripe import GetPaymentIntentInput, ListRefundsInput, ListRefundsOutput
    from workflows.common.flow import email_ops, error_type
    from workflows.common.lifecycle import Flow
    from workflows.common.models import (
        ORDER_STATE_WRITE,
        FlowContext,
        OrderStateWrite,
        OrderStateWritten,
    )
    from workflows.ids import RECONCILIATION
    from workflows.reconciliation.drift import in_production, payment_drifts, printful_drift
    from workflows.reconciliation.models import (
        RECONCILE_SCOPE,
        Drift,
        DriftRow,
        OrderView,
        PaymentView,
        ReconcileScope,
        ReconciliationInput,
        ReconciliationResult,
        ScopeRequest,
    )
    from workflows.reconciliation.reconcile_drift import request_repair
    from workflows.reconciliation.shared import (
        DB_TIMEOUT,
        failure_text,
        mark_started,
        record,
        resolve,
    )

WINDOW_REFUNDS_MAX = 1000
REFUNDS_PER_INTENT_MAX = 100


@dataclass
class Sweep:
    """What the run has read and done: the result and the ``status`` query's detail are
    read from here."""

    window_start: datetime
    window_end: datetime
    scope: ReconcileScope = field(default_factory=ReconcileScope)
    scope_read: bool = False
    refunds_seen: int = 0
    rows: list[DriftRow] = field(default_factory=list)
    repairs: dict[str, str] = field(default_factory=dict)  # drift id -> ReconcileDrift id
    handled: bool = False  # every row handled and ops told

    def shown(self) -> dict[str, Any]:
        """The window, the scope's size once read, the drift and repairs once handled."""
        shown: dict[str, Any] = {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
        }
        if self.scope_read:
            shown.update(orders=len(self.scope.orders), payments=len(self.scope.payments))
        if self.handled:
            shown.update(drifts=len(self.rows), repairs=len(self.repairs))
        return shown


@workflow.defn(name=RECONCILIATION.type)
class Reconciliation(Flow):
    def __init__(self) -> None:
        super().__init__()
        self._facts: Sweep | None = None

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ReconciliationInput) -> ReconciliationResult:
        mark_started(input.tenant_id, self._state)
        context = await self._begin(RECONCILIATION, input)
        self._facts = Sweep(*_window(input))
        try:
            await self._reconcile(input, context)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            await self._failed(exc)
            raise
        await self._end("completed")
        return self._result(input)

    async def _reconcile(self, input: ReconciliationInput, context: FlowContext) -> None:
        await self._move("reading")
        scope = await self._read_scope(input)
        drifts = await self._check_payments(scope.payments)
        drifts += await self._check_orders(scope.orders)
        self._kernel.decision(
            workflow.now(),
            "drift_detected",
            {"count": len(drifts), "kinds": sorted({d.kind for d in drifts})},
        )
        await self._move("recording")
        rows = await record(input.tenant_id, drifts)
        await self._move("handling")
        handled = await self._handle(input, context, rows)
        await self._notify_ops(context, handled)
        self._sweep.rows, self._sweep.handled = handled, True

    # -- reading ----------------------------------------------------------------------

    async def _read_scope(self, input: ReconciliationInput) -> ReconcileScope:
        """What to check: our orders and captures changed in the window, and those behind
        the refunds Stripe shows in it (an outside refund long after the sale too)."""
        sweep = self._sweep
        in_window = await self._refunds_in_window()
        intents = sorted({r.payment_intent_id for r in in_window.refunds if r.payment_intent_id})
        scope = await internal_activity(
            RECONCILE_SCOPE,
            ScopeRequest(
                tenant_id=input.tenant_id,
                window_start=sweep.window_start,
                window_end=sweep.window_end,
                payment_intents=tuple(intents),
                max_orders=input.max_orders,
            ),
            result_type=ReconcileScope,
            limit=DB_TIMEOUT,
        )
        assert scope is not None
        if scope.truncated:
            self._kernel.decision(
                workflow.now(), "scope_truncated", {"max_orders": input.max_orders}
            )
        sweep.scope, sweep.scope_read = scope, True
        sweep.refunds_seen = len(in_window.refunds)
        return scope

    async def _refunds_in_window(self) -> ListRefundsOutput:
        in_window = await kernel_call(
            self._kernel,
            tools.stripe.LIST_REFUNDS,
            ListRefundsInput(
                created_gte=int(self._sweep.window_start.timestamp()),
                created_lte=int(self._sweep.window_end.timestamp()),
                max_results=WINDOW_REFUNDS_MAX,
            ),
            step="refunds:window",
        )
        if in_window.truncated:
            self._kernel.decision(
                workflow.now(), "window_refunds_truncated", {"max": WINDOW_REFUNDS_MAX}
            )
        return in_window

    async def _check_payments(self, payments: tuple[PaymentView, ...]) -> list[Drift]:
        drifts: list[Drift] = []
        for payment in payments:
            drifts.extend(await self._check_payment(payment))
        return drifts

    async def _check_payment(self, payment: PaymentView) -> list[Drift]:
        """The PaymentIntent and its refunds, against our capture and refund receipts."""
        pi = payment.payment_intent_id
        try:
            intent = await kernel_call(
                self._kernel,
                tools.stripe.GET_PAYMENT_INTENT,
                GetPaymentIntentInput(payment_intent_id=pi, order_id=payment.order_id),
                step=f"intent:{pi}",
                absent_ok=True,
            )
            refunds = await kernel_call(
                self._kernel,
                tools.stripe.LIST_REFUNDS,
                ListRefundsInput(payment_intent_id=pi, max_results=REFUNDS_PER_INTENT_MAX),
                step=f"refunds:{pi}",
            )
        except ActivityError as exc:
            self._skip_unknown(exc, pi)
            return []
        return payment_drifts(payment, intent, refunds)

    async def _check_orders(self, orders: tuple[OrderView, ...]) -> list[Drift]:
        drifts: list[Drift] = []
        for order in orders:
            if not in_production(order):
                continue
            found = await self._check_order(order)
            if found is not None:
                drifts.append(found)
        return drifts

    async def _check_order(self, order: OrderView) -> Drift | None:
        """The Printful order of an order the projection says is in production or later."""
        assert order.printful_order_id is not None
        try:
            printful = await kernel_call(
                self._kernel,
                tools.printful.GET_ORDER,
                PrintfulOrderRef(printful_order_id=order.printful_order_id),
                step=f"printful:{order.printful_order_id}",
                absent_ok=True,
            )
        except ActivityError as exc:
            self._skip_unknown(exc, f"printful:{order.printful_order_id}")
            return None
        return printful_drift(order, printful)

    def _skip_unknown(self, exc: ActivityError, entity: str) -> None:
        """A provider that no longer knows one entity must not stop the whole run: noted in
        the trace and skipped. Anything else (an outage after Temporal's retries) fails it."""
        if error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
            raise exc
        self._kernel.decision(workflow.now(), "entity_not_found", {"entity": entity})

    # -- recording and handling -------------------------------------------------------

    async def _handle(
        self, input: ReconciliationInput, context: FlowContext, rows: tuple[DriftRow, ...]
    ) -> list[DriftRow]:
        """Financial rows to an approval workflow, open non-financial ones repaired here."""
        orders = {o.order_id: o for o in self._sweep.scope.orders}
        handled: list[DriftRow] = []
        for row in rows:
            if row.financial and row.status in ("open", "pending_approval"):
                row, child = await request_repair(input, context, row)
                if child is not None:
                    self._sweep.repairs[str(row.drift_id)] = child
            elif not row.financial and row.status == "open":
                order = orders.get(row.order_id or "")
                if order is not None:
                    row = await self._repair_projection(row, order)
            handled.append(row)
        return handled

    async def _repair_projection(self, row: DriftRow, order: OrderView) -> DriftRow:
        """printful_cancelled_outside: the projection says what is true now (optimistic);
        one that moved meanwhile leaves the row open for the next run."""
        run = self._kernel
        written = await self._write_exception(row, order)
        if written is None:
            run.decision(
                workflow.now(),
                "repair_deferred",
                {"drift_id": row.drift_id, "why": "projection moved"},
            )
            return await resolve(
                run.tenant_id,
                row.drift_id,
                "open",
                "projection_moved_retry_next_run",
                from_statuses=("open",),
            )
        run.decision(
            workflow.now(),
            "projection_repaired",
            {"drift_id": row.drift_id, "order_id": order.order_id, "version": written.version},
        )
        return await resolve(
            run.tenant_id,
            row.drift_id,
            "repaired",
            "projection_set_exception",
            from_statuses=("open",),
            details={
                "order_state_version": written.version,
                "previous_state": order.state,
                "repaired_by": workflow.info().workflow_id,
            },
        )

    async def _write_exception(self, row: DriftRow, order: OrderView) -> OrderStateWritten | None:
        """The order's projection to ``exception`` at the version read; None when it moved."""
        data = {
            **order.data,
            "exception": "printful_cancelled",
            "previous_state": order.state,
            "reconciliation": {"drift_id": row.drift_id, "run": workflow.info().workflow_id},
        }
        try:
            written = await internal_activity(
                ORDER_STATE_WRITE,
                OrderStateWrite(
                    tenant_id=self._kernel.tenant_id,
                    order_id=order.order_id,
                    state="exception",
                    expected_version=order.version,
                    data=data,
                ),
                result_type=OrderStateWritten,
                limit=DB_TIMEOUT,
            )
        except ActivityError as exc:
            if error_type(exc) != ErrorCode.ORDER_STATE_CONFLICT:
                raise
            return None
        assert written is not None
        return written

    async def _notify_ops(self, context: FlowContext, rows: list[DriftRow]) -> None:
        """One summary email per run that found drift it had not seen before."""
        wf_id = workflow.info().workflow_id
        new = [r for r in rows if r.run_id == wf_id]
        if not new or not context.ops_email:
            return
        by_status = {
            s: sum(1 for r in new if r.status == s)
            for s in ("repaired", "pending_approval", "open")
        }
        failed = await email_ops(
            self._kernel,
            to=context.ops_email,
            template="reconciliation_drift",
            subject=f"Reconciliation: {len(new)} new drift(s)",
            step="notify_ops",
            variables={
                "run": wf_id,
                "new": str(len(new)),
                "kinds": ", ".join(sorted({r.kind for r in new})),
                "repaired": str(by_status["repaired"]),
                "awaiting_approval": str(by_status["pending_approval"]),
                "open": str(by_status["open"]),
            },
        )
        if failed is not None:
            # The rows are the record; an email that cannot be sent must not undo them.
            self._kernel.decision(workflow.now(), "ops_notice_failed", {"error": failed})

    # -- how the flow ends otherwise --------------------------------------------------

    async def _failed(self, exc: ActivityError | ApplicationError) -> None:
        """A read or a row write failed after Temporal's retries (the caller raises again);
        a cancellation that surfaced from an activity ends ``cancelled``."""
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            return await self._end_cancelled()
        self._error = failure_text(exc)
        await self._end("failed")

    # Cancelled from the Temporal side: the base's _end_cancelled (nothing to undo: the rows
    # written are the record; repair children started go on).

    # -- platform hooks ---------------------------------------------------------------

    @property
    def _sweep(self) -> Sweep:
        assert self._facts is not None, "run() has not read its window"
        return self._facts

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown() if self._facts is not None else {}

    def _result(self, input: ReconciliationInput) -> ReconciliationResult:
        s = self._sweep
        return ReconciliationResult(
            workflow_id=workflow.info().workflow_id,
            tenant_id=input.tenant_id,
            window_start=s.window_start,
            window_end=s.window_end,
            orders_checked=len(s.scope.orders),
            payments_checked=len(s.scope.payments),
            refunds_seen=s.refunds_seen,
            truncated=s.scope.truncated,
            drifts=tuple(s.rows),
            repairs=s.repairs,
            cost_micros=self._kernel.cost_micros,
        )


def _window(input: ReconciliationInput) -> tuple[datetime, datetime]:
    """``[window_start, window_end]``: by default the ``window`` before the run started."""
    end = input.window_end or workflow.now()
    start = input.window_start or end - input.window
    if start >= end:
        raise ApplicationError(
            f"the window {start.isoformat()} .. {end.isoformat()} is empty",
            type=ErrorCode.WINDOW_INVALID,
            non_retryable=True,
        )
    return start, end
