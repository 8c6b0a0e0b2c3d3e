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
  failure): a scheduled run must finish in seconds while an approval may wait a day, and
  a row whose approval is still open must not be asked twice. The child's ``decide``
  update works like every other flow's (``autobiz approvals approve|deny``).

  - ``refund_outside``: approve → record the refund on the Shopify order
    (``shopify.refund_create``, ``@idempotent`` per Stripe refund, customer not
    notified; HITL ALWAYS in the config) so the books agree — no money moves, it already
    has; when Shopify already shows the order fully refunded nothing is written →
    ``repaired``. Deny → ``dismissed``.
  - ``capture_missing`` / ``amount_mismatch``: nothing safe to do automatically (moving
    money to match a receipt is not reconciliation), so approval means "acknowledged,
    handled by people" → ``repaired``; deny → ``dismissed``.
  - Expiry fails closed (INV-07): nothing is written, the row goes back to ``open``,
    the child fails with ``APPROVAL_EXPIRED``, and the next run asks again.

Deterministic: I/O only through ``kernel_call`` and ``internal_activity``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
    from kernel import tools
    from kernel.call import internal_activity, kernel_call, persist_trace, start_run
    from kernel.codes import ErrorCode
    from kernel.state import RunState
    from kernel.tools.printful import GetPrintfulOrderOutput, PrintfulOrderRef
    from kernel.tools.shopify import GetOrderInput, ShopifyRefundInput
    from kernel.tools.stripe import (
        GetPaymentIntentInput,
        GetPaymentIntentOutput,
        ListRefundsInput,
        ListRefundsOutput,
    )
    from workflows.common.approvals import ApprovalDenied, ApprovalDesk, call_with_approval
    from workflows.common.flow import approval_notifier, load_context, move, send_email
    from workflows.common.handlers import ApprovalHandlers, FlowHandlers
    from workflows.common.models import (
        ORDER_STATE_WRITE,
        ApprovalView,
        FlowContext,
        OrderStateWrite,
        OrderStateWritten,
    )
    from workflows.ids import RECONCILE_DRIFT, RECONCILIATION, drift_workflow_id
    from workflows.reconciliation.models import (
        FINANCIAL_DRIFT,
        RECONCILE_RECORD,
        RECONCILE_RESOLVE,
        RECONCILE_SCOPE,
        Drift,
        DriftBatch,
        DriftKind,
        DriftRepairInput,
        DriftRepairResult,
        DriftResolve,
        DriftResolved,
        DriftRow,
        DriftRows,
        DriftStatus,
        OrderView,
        PaymentView,
        ReconcileScope,
        ReconciliationInput,
        ReconciliationResult,
        ScopeRequest,
    )

WORKFLOW_TYPE = RECONCILIATION.key
DB_TIMEOUT = timedelta(seconds=30)
# Projection states in which the Printful order must still be alive.
PRODUCTION_STATES = frozenset({"in_production", "awaiting_shipment", "shipped", "completed"})
# Refunds in these states moved no money.
DEAD_REFUNDS = frozenset({"failed", "canceled"})
WINDOW_REFUNDS_MAX = 1000
REFUNDS_PER_INTENT_MAX = 100


def _mark(tenant_id: str, state: str, order_id: str | None = None) -> None:
    updates: list[SearchAttributeUpdate[Any]] = [
        TENANT_ID.value_set(tenant_id),
        FLOW_STATE.value_set(state),
        APPROVAL_PENDING.value_set(False),
    ]
    if order_id:
        updates.append(ORDER_ID.value_set(order_id))
    workflow.upsert_search_attributes(updates)


async def _resolve(
    tenant_id: str,
    drift_id: int,
    status: DriftStatus,
    action: str,
    *,
    from_statuses: tuple[DriftStatus, ...],
    details: dict[str, Any] | None = None,
) -> DriftRow:
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


def _error_type(exc: BaseException) -> str | None:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return getattr(cause, "type", None)


def _skip_unknown(run: RunState, exc: ActivityError, entity: str) -> None:
    """A provider that no longer knows one entity must not stop the whole run: noted in
    the trace and skipped. Anything else (an outage after Temporal's retries) fails it."""
    if _error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
        raise exc
    run.decision(workflow.now(), "entity_not_found", {"entity": entity})


# -- checks (pure) --------------------------------------------------------------------


def payment_drifts(
    payment: PaymentView, intent: GetPaymentIntentOutput, refunds: ListRefundsOutput
) -> list[Drift]:
    """Capture and refund drift of one PaymentIntent we captured."""
    drifts: list[Drift] = []
    pi = payment.payment_intent_id
    expected = {
        "status": "succeeded",
        "amount_received_minor": payment.captured_minor,
        "currency": payment.currency,
        "order_id": payment.order_id,
    }
    actual = {
        "status": intent.status,
        "amount_received_minor": intent.amount_received_minor,
        "currency": intent.currency,
        "order_id": payment.order_id,
    }
    kind: DriftKind | None = None
    if intent.status != "succeeded" or intent.amount_received_minor == 0:
        kind = "capture_missing"
    elif (
        intent.amount_received_minor != payment.captured_minor
        or intent.currency != payment.currency
    ):
        kind = "amount_mismatch"
    if kind is not None:
        drift = Drift(
            kind=kind,
            entity_ref=pi,
            order_id=payment.order_id,
            financial=True,
            expected=expected,
            actual=actual,
            action="acknowledge_required",
        )
        drifts.append(drift)
    accounted = set(payment.accounted_refunds)
    ours = sum(r.amount_minor for r in refunds.refunds if r.refund_id in accounted)
    for r in refunds.refunds:
        if r.refund_id in accounted or r.status in DEAD_REFUNDS:
            continue
        outside = Drift(
            kind="refund_outside",
            entity_ref=r.refund_id,
            order_id=payment.order_id,
            financial=True,
            expected={
                "payment_intent_id": pi,
                "order_id": payment.order_id,
                "refunded_by_autobiz_minor": ours,
                "autobiz_refunds": sorted(accounted),
            },
            actual={
                "refund_id": r.refund_id,
                "payment_intent_id": pi,
                "order_id": payment.order_id,
                "amount_minor": r.amount_minor,
                "currency": r.currency,
                "status": r.status,
                "reason": r.reason,
                "created": r.created,
                "refund_request_id": r.refund_request_id,
            },
            action="approval_to_record_in_shopify",
        )
        drifts.append(outside)
    return drifts


def printful_drift(order: OrderView, printful: GetPrintfulOrderOutput) -> Drift | None:
    if printful.status != "canceled":
        return None
    return Drift(
        kind="printful_cancelled_outside",
        entity_ref=f"printful:{printful.printful_order_id}",
        order_id=order.order_id,
        financial=False,
        expected={
            "projection_state": order.state,
            "printful_status": "not canceled",
            "printful_order_id": printful.printful_order_id,
        },
        actual={
            "printful_status": printful.status,
            "printful_order_id": printful.printful_order_id,
            "external_id": printful.external_id,
        },
        action="repair_projection",
    )


# -- the scheduled run ----------------------------------------------------------------


@workflow.defn(name=RECONCILIATION.type)
class Reconciliation(FlowHandlers):
    def _move(self, new: str) -> None:
        assert self._run is not None
        self._state = move(self._run, self._state, new)

    @workflow.run
    async def run(self, input: ReconciliationInput) -> ReconciliationResult:
        self._tenant = input.tenant_id
        _mark(input.tenant_id, self._state)
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        end = input.window_end or workflow.now()
        start = input.window_start or end - input.window
        if start >= end:
            raise ApplicationError(
                f"the window {start.isoformat()} .. {end.isoformat()} is empty",
                type=ErrorCode.WINDOW_INVALID,
                non_retryable=True,
            )
        wf_id = workflow.info().workflow_id
        self._detail.update(window_start=start.isoformat(), window_end=end.isoformat())
        try:
            scope, refunds_seen, drifts = await self._detect(input, run, start, end)
            self._move("recording")
            recorded = await internal_activity(
                RECONCILE_RECORD,
                DriftBatch(tenant_id=input.tenant_id, run_id=wf_id, drifts=tuple(drifts)),
                result_type=DriftRows,
                limit=DB_TIMEOUT,
            )
            assert recorded is not None
            self._move("handling")
            rows, repairs = await self._handle(input, context, run, scope, recorded.rows)
            await self._notify_ops(context, run, rows)
        except (ActivityError, ApplicationError) as exc:
            self._error = str(exc.cause if isinstance(exc, ActivityError) else exc)
            self._move("failed")
            await persist_trace(run)
            raise
        self._detail.update(drifts=len(rows), repairs=len(repairs))
        self._move("completed")
        await persist_trace(run)
        return ReconciliationResult(
            workflow_id=wf_id,
            tenant_id=input.tenant_id,
            window_start=start,
            window_end=end,
            orders_checked=len(scope.orders),
            payments_checked=len(scope.payments),
            refunds_seen=refunds_seen,
            truncated=scope.truncated,
            drifts=tuple(rows),
            repairs=repairs,
            cost_micros=run.cost_micros,
        )

    async def _detect(
        self, input: ReconciliationInput, run: RunState, start: datetime, end: datetime
    ) -> tuple[ReconcileScope, int, list[Drift]]:
        self._move("reading")
        in_window = await kernel_call(
            run,
            tools.stripe.LIST_REFUNDS,
            ListRefundsInput(
                created_gte=int(start.timestamp()),
                created_lte=int(end.timestamp()),
                max_results=WINDOW_REFUNDS_MAX,
            ),
            step="refunds:window",
        )
        if in_window.truncated:
            run.decision(workflow.now(), "window_refunds_truncated", {"max": WINDOW_REFUNDS_MAX})
        intents = sorted({r.payment_intent_id for r in in_window.refunds if r.payment_intent_id})
        scope = await internal_activity(
            RECONCILE_SCOPE,
            ScopeRequest(
                tenant_id=input.tenant_id,
                window_start=start,
                window_end=end,
                payment_intents=tuple(intents),
                max_orders=input.max_orders,
            ),
            result_type=ReconcileScope,
            limit=DB_TIMEOUT,
        )
        assert scope is not None
        if scope.truncated:
            run.decision(workflow.now(), "scope_truncated", {"max_orders": input.max_orders})
        self._detail.update(orders=len(scope.orders), payments=len(scope.payments))
        drifts: list[Drift] = []
        refunds_seen = len(in_window.refunds)
        for payment in scope.payments:
            pi = payment.payment_intent_id
            try:
                intent = await kernel_call(
                    run,
                    tools.stripe.GET_PAYMENT_INTENT,
                    GetPaymentIntentInput(payment_intent_id=pi, order_id=payment.order_id),
                    step=f"intent:{pi}",
                    absent_ok=True,
                )
                refunds = await kernel_call(
                    run,
                    tools.stripe.LIST_REFUNDS,
                    ListRefundsInput(payment_intent_id=pi, max_results=REFUNDS_PER_INTENT_MAX),
                    step=f"refunds:{pi}",
                )
            except ActivityError as exc:
                _skip_unknown(run, exc, pi)
                continue
            drifts.extend(payment_drifts(payment, intent, refunds))
        for order in scope.orders:
            if order.printful_order_id is None or order.state not in PRODUCTION_STATES:
                continue
            try:
                printful = await kernel_call(
                    run,
                    tools.printful.GET_ORDER,
                    PrintfulOrderRef(printful_order_id=order.printful_order_id),
                    step=f"printful:{order.printful_order_id}",
                    absent_ok=True,
                )
            except ActivityError as exc:
                _skip_unknown(run, exc, f"printful:{order.printful_order_id}")
                continue
            found = printful_drift(order, printful)
            if found is not None:
                drifts.append(found)
        run.decision(
            workflow.now(),
            "drift_detected",
            {"count": len(drifts), "kinds": sorted({d.kind for d in drifts})},
        )
        return scope, refunds_seen, drifts

    async def _handle(
        self,
        input: ReconciliationInput,
        context: FlowContext,
        run: RunState,
        scope: ReconcileScope,
        rows: tuple[DriftRow, ...],
    ) -> tuple[list[DriftRow], dict[str, str]]:
        orders = {o.order_id: o for o in scope.orders}
        handled: list[DriftRow] = []
        repairs: dict[str, str] = {}
        for row in rows:
            if row.financial and row.status in ("open", "pending_approval"):
                row, child = await self._request_repair(input, context, row)
                if child is not None:
                    repairs[str(row.drift_id)] = child
            elif not row.financial and row.status == "open":
                order = orders.get(row.order_id or "")
                if order is not None:
                    row = await self._repair_projection(run, row, order)
            handled.append(row)
        return handled, repairs

    async def _repair_projection(self, run: RunState, row: DriftRow, order: OrderView) -> DriftRow:
        """printful_cancelled_outside: the projection says what is true now (optimistic)."""
        wf_id = workflow.info().workflow_id
        data = {
            **order.data,
            "exception": "printful_cancelled",
            "previous_state": order.state,
            "reconciliation": {"drift_id": row.drift_id, "run": wf_id},
        }
        try:
            written = await internal_activity(
                ORDER_STATE_WRITE,
                OrderStateWrite(
                    tenant_id=run.tenant_id,
                    order_id=order.order_id,
                    state="exception",
                    expected_version=order.version,
                    data=data,
                ),
                result_type=OrderStateWritten,
                limit=DB_TIMEOUT,
            )
        except ActivityError as exc:
            if _error_type(exc) != ErrorCode.ORDER_STATE_CONFLICT:
                raise
            run.decision(
                workflow.now(),
                "repair_deferred",
                {"drift_id": row.drift_id, "why": "projection moved"},
            )
            return await _resolve(
                run.tenant_id,
                row.drift_id,
                "open",
                "projection_moved_retry_next_run",
                from_statuses=("open",),
            )
        assert written is not None
        run.decision(
            workflow.now(),
            "projection_repaired",
            {"drift_id": row.drift_id, "order_id": order.order_id, "version": written.version},
        )
        return await _resolve(
            run.tenant_id,
            row.drift_id,
            "repaired",
            "projection_set_exception",
            from_statuses=("open",),
            details={
                "order_state_version": written.version,
                "previous_state": order.state,
                "repaired_by": wf_id,
            },
        )

    async def _request_repair(
        self, input: ReconciliationInput, context: FlowContext, row: DriftRow
    ) -> tuple[DriftRow, str | None]:
        """Start the row's approval workflow, unless one is already waiting."""
        info = workflow.info()
        child_id = drift_workflow_id(input.tenant_id, row.drift_id)
        if row.status == "open":
            row = await _resolve(
                input.tenant_id,
                row.drift_id,
                "pending_approval",
                "approval_requested",
                from_statuses=("open",),
                details={"repair_workflow_id": child_id},
            )
        try:
            await workflow.start_child_workflow(
                ReconcileDrift.run,
                DriftRepairInput(
                    tenant_id=input.tenant_id,
                    drift=row,
                    context=context,
                    reconciliation_id=info.workflow_id,
                    principal=input.principal,
                    acknowledge_roles=input.acknowledge_roles,
                    acknowledge_timeout=input.acknowledge_timeout,
                ),
                id=child_id,
                task_queue=info.task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            return row, None  # its approval is still open (or it just finished)
        return row, child_id

    async def _notify_ops(self, context: FlowContext, run: RunState, rows: list[DriftRow]) -> None:
        """One summary email per run that found drift it had not seen before."""
        wf_id = workflow.info().workflow_id
        new = [r for r in rows if r.run_id == wf_id]
        if not new or not context.ops_email:
            return
        by_status = {
            s: sum(1 for r in new if r.status == s)
            for s in ("repaired", "pending_approval", "open")
        }
        try:
            await send_email(
                run,
                to=context.ops_email,
                template="reconciliation_drift",
                category="ops",
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
        except (ActivityError, ApplicationError) as exc:
            # The rows are the record; an email that cannot be sent must not undo them.
            run.decision(workflow.now(), "ops_notice_failed", {"error": str(exc)})


# -- one financial drift's approval -----------------------------------------------------


@workflow.defn(name=RECONCILE_DRIFT.type)
class ReconcileDrift(ApprovalHandlers):
    def _move(self, new: str) -> None:
        assert self._run is not None
        self._state = move(self._run, self._state, new)

    @workflow.run
    async def run(self, input: DriftRepairInput) -> DriftRepairResult:
        drift = input.drift
        self._tenant = input.tenant_id
        _mark(input.tenant_id, self._state, drift.order_id)
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        desk = self._desk = ApprovalDesk(input.tenant_id)
        desk.configure(context)
        self._detail.update(drift_id=drift.drift_id, kind=drift.kind, entity_ref=drift.entity_ref)
        if drift.kind not in FINANCIAL_DRIFT:
            raise ApplicationError(
                f"drift kind {drift.kind} is not financial",
                type=ErrorCode.DRIFT_KIND_INVALID,
                non_retryable=True,
            )
        current = await _resolve(
            input.tenant_id,
            drift.drift_id,
            "pending_approval",
            "approval_requested",
            from_statuses=("open", "pending_approval"),
            details={"repair_workflow_id": workflow.info().workflow_id},
        )
        if current.status != "pending_approval":
            # Resolved meanwhile (by another repair run, or by hand): nothing to ask.
            self._move(current.status)
            await persist_trace(run)
            return DriftRepairResult(
                workflow_id=workflow.info().workflow_id,
                drift_id=drift.drift_id,
                kind=drift.kind,
                status=current.status,
                action=current.action,
                cost_micros=run.cost_micros,
            )
        self._move("awaiting_approval")
        shopify_refund_id: str | None = None
        try:
            if drift.kind == "refund_outside":
                action, shopify_refund_id = await self._record_refund(input, context, run, desk)
            else:
                action = await self._acknowledge(input, context, desk, run)
        except ApprovalDenied as denied:
            return await self._closed(input, run, denied.view)
        except (ActivityError, ApplicationError) as exc:
            self._error = str(exc.cause if isinstance(exc, ActivityError) else exc)
            await _resolve(
                input.tenant_id,
                drift.drift_id,
                "open",
                "repair_failed",
                from_statuses=("pending_approval",),
                details={"error": self._error[:300]},
            )
            self._move("failed")
            await persist_trace(run)
            raise
        view = desk.history[-1] if desk.history else None
        details: dict[str, Any] = {
            "request_id": view.request_id if view else None,
            "decided_by": view.decided_by if view else None,
        }
        if shopify_refund_id is not None:
            details["shopify_refund_id"] = shopify_refund_id
        row = await _resolve(
            input.tenant_id,
            drift.drift_id,
            "repaired",
            action,
            from_statuses=("pending_approval",),
            details=details,
        )
        self._move("repaired")
        await persist_trace(run)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DriftRepairResult(
            workflow_id=workflow.info().workflow_id,
            drift_id=drift.drift_id,
            kind=drift.kind,
            status=row.status,
            action=row.action,
            approval=view,
            shopify_refund_id=shopify_refund_id,
            cost_micros=run.cost_micros,
        )

    async def _closed(
        self, input: DriftRepairInput, run: RunState, view: ApprovalView
    ) -> DriftRepairResult:
        """Denied: dismissed. Expired: back to open, nothing written, the run fails closed."""
        drift = input.drift
        details = {
            "request_id": view.request_id,
            "decided_by": view.decided_by,
            "reason": view.reason,
        }
        if view.status == "denied":
            row = await _resolve(
                input.tenant_id,
                drift.drift_id,
                "dismissed",
                "dismissed",
                from_statuses=("pending_approval",),
                details=details,
            )
            self._move("dismissed")
            await persist_trace(run)
            await workflow.wait_condition(workflow.all_handlers_finished)
            return DriftRepairResult(
                workflow_id=workflow.info().workflow_id,
                drift_id=drift.drift_id,
                kind=drift.kind,
                status=row.status,
                action=row.action,
                approval=view,
                cost_micros=run.cost_micros,
            )
        await _resolve(
            input.tenant_id,
            drift.drift_id,
            "open",
            "approval_expired",
            from_statuses=("pending_approval",),
            details=details,
        )
        self._move("expired")
        await persist_trace(run)
        await workflow.wait_condition(workflow.all_handlers_finished)
        raise ApplicationError(
            f"approval {view.request_id} expired: drift {drift.drift_id} left open (fail closed)",
            type=ErrorCode.APPROVAL_EXPIRED,
            non_retryable=True,
        )

    async def _record_refund(
        self, input: DriftRepairInput, context: FlowContext, run: RunState, desk: ApprovalDesk
    ) -> tuple[str, str | None]:
        """Approve → the Stripe refund recorded on the Shopify order (no money moves)."""
        actual = input.drift.actual
        order_id = input.drift.order_id or actual.get("order_id")
        if not order_id:
            return await self._acknowledge(input, context, desk, run), None
        try:
            order = await kernel_call(
                run,
                tools.shopify.GET_ORDER,
                GetOrderInput(order_id=str(order_id)),
                step="shopify_order",
                absent_ok=True,
            )
        except ActivityError as exc:
            if _error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
                raise
            # No Shopify order to record it on: a person acknowledges it instead.
            run.decision(workflow.now(), "shopify_order_missing", {"order_id": str(order_id)})
            return await self._acknowledge(input, context, desk, run), None
        self._detail["shopify_financial_status"] = order.financial_status
        if order.financial_status.upper() == "REFUNDED":
            # Shopify already shows every cent back: acknowledge, write nothing.
            await self._acknowledge(input, context, desk, run)
            return "already_in_shopify", None
        refund_id = str(actual["refund_id"])
        amount, currency = int(actual["amount_minor"]), str(actual["currency"])
        recorded = await call_with_approval(
            desk,
            run,
            tools.shopify.REFUND_CREATE,
            ShopifyRefundInput(
                order_id=str(order_id),
                refund_request_id=f"recon-{refund_id}"[:64],
                amount_minor=amount,
                currency=currency,
                notify_customer=False,
                note=f"Stripe refund {refund_id} made outside AutoBiz; recorded by reconciliation.",
            ),
            step="record_refund",
            action="record_refund_outside",
            amount_minor=amount,
            currency=currency,
            notify=approval_notifier(run),
            timeout_override=context.timing.timeout,
        )
        return "recorded_in_shopify", recorded.refund_id

    async def _acknowledge(
        self, input: DriftRepairInput, context: FlowContext, desk: ApprovalDesk, run: RunState
    ) -> str:
        """No tool can repair it: a person acknowledges it (raises ApprovalDenied if not)."""
        drift = input.drift
        amount, currency = _drift_amount(drift)
        view = await desk.obtain(
            action=f"acknowledge_{drift.kind}",
            roles=input.acknowledge_roles,
            expires_in=context.timing.timeout or input.acknowledge_timeout,
            amount_minor=amount,
            currency=currency,
            notify=approval_notifier(run),
            details={
                "drift_id": drift.drift_id,
                "kind": drift.kind,
                "entity_ref": drift.entity_ref,
            },
        )
        if view.status != "approved":
            run.decision(
                workflow.now(),
                f"approval_{view.status}",
                {"request_id": view.request_id, "drift_id": drift.drift_id},
            )
            raise ApprovalDenied(view)
        run.decision(
            workflow.now(),
            "drift_acknowledged",
            {"request_id": view.request_id, "approver": view.decided_by},
        )
        return "acknowledged"


def _drift_amount(drift: DriftRow) -> tuple[int | None, str | None]:
    """The money a financial drift is about, for the approval request."""
    a, e = drift.actual, drift.expected
    currency = a.get("currency") or e.get("currency")
    if drift.kind == "refund_outside":
        return int(a.get("amount_minor") or 0), currency
    expected = int(e.get("amount_received_minor") or 0)
    return abs(expected - int(a.get("amount_received_minor") or 0)), currency
