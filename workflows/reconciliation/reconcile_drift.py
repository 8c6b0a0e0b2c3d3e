"""ReconcileDrift: one financial drift row, repaired only through a human approval.

A child of ``Reconciliation`` per row (id ``reconcile-drift:{tenant}:{drift_id}``,
parent-close ABANDON, id reuse only after a failure), under the reconciliation policy:
a scheduled run must finish in seconds while an approval may wait a day, and a row whose
approval is still open must not be asked twice. Its ``decide`` update works like every
other flow's (``autobiz approvals approve|deny``).

The row is claimed first (``open`` → ``pending_approval``); a row resolved meanwhile (by
another repair run, or by hand) ends the run with nothing asked.

* ``refund_outside``: approve → record the refund on the Shopify order
  (``shopify.refund_create``, ``@idempotent`` per Stripe refund, customer not notified;
  HITL ALWAYS in the config) so the books agree — no money moves, it already has; when
  Shopify already shows the order fully refunded nothing is written, and an order
  Shopify does not know is acknowledged instead → ``repaired``. Deny → ``dismissed``.
* ``capture_missing`` / ``amount_mismatch``: nothing safe to do automatically (moving
  money to match a receipt is not reconciliation), so approval means "acknowledged,
  handled by people" → ``repaired``; deny → ``dismissed``.
* Expiry fails closed (INV-07): nothing is written, the row goes back to ``open``, the
  run fails with ``APPROVAL_EXPIRED``, and the next reconciliation asks again.
* A failed repair puts the row back to ``open`` (``repair_failed``) and fails the run.
* Cancelled (``temporal workflow cancel``): the waiting request is withdrawn (the desk
  closes its row), the drift row goes back to ``open`` (``repair_cancelled``), the run
  ends ``cancelled``.

Deterministic: I/O only through ``kernel_call`` and ``internal_activity``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import kernel_call
    from kernel.codes import ErrorCode
    from kernel.tools.shopify import GetOrderInput, GetOrderOutput, ShopifyRefundInput
    from workflows.common.approvals import ApprovalDenied, call_with_approval
    from workflows.common.flow import approval_notifier, error_type
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import ApprovalView, FlowContext
    from workflows.ids import RECONCILE_DRIFT, drift_workflow_id
    from workflows.reconciliation.drift import drift_amount
    from workflows.reconciliation.models import (
        FINANCIAL_DRIFT,
        DriftRepairInput,
        DriftRepairResult,
        DriftRow,
        DriftStatus,
    )
    from workflows.reconciliation.shared import failure_text, mark_started, resolve


@dataclass
class Repair:
    """The drift asked about and how it ended: the result and the ``status`` query's
    detail are read from here."""

    drift_id: int
    kind: str
    entity_ref: str
    shopify_financial_status: str | None = None
    status: DriftStatus | None = None
    action: str | None = None
    approval: ApprovalView | None = None
    shopify_refund_id: str | None = None

    def shown(self) -> dict[str, Any]:
        """The detail operators see (the Shopify status once read)."""
        shown: dict[str, Any] = {
            "drift_id": self.drift_id,
            "kind": self.kind,
            "entity_ref": self.entity_ref,
        }
        if self.shopify_financial_status is not None:
            shown["shopify_financial_status"] = self.shopify_financial_status
        return shown

    def settled(self, row: DriftRow, approval: ApprovalView | None = None) -> None:
        self.status, self.action, self.approval = row.status, row.action, approval


@workflow.defn(name=RECONCILE_DRIFT.type)
class ReconcileDrift(ApprovalFlow):
    def __init__(self) -> None:
        super().__init__()
        self._facts: Repair | None = None

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: DriftRepairInput) -> DriftRepairResult:
        drift = input.drift
        mark_started(input.tenant_id, self._state, drift.order_id)
        context = await self._begin(RECONCILE_DRIFT, input)
        self._facts = Repair(drift.drift_id, drift.kind, drift.entity_ref)
        _require_financial(drift)
        claimed = await self._claim(input)
        if claimed.status != "pending_approval":
            return await self._resolved_meanwhile(claimed)
        await self._move("awaiting_approval")
        try:
            await self._ask_and_repair(input, context)
        except ApprovalDenied as denied:
            return await self._not_approved(input, denied.view)
        except asyncio.CancelledError:
            await self._cancelled(input)
            raise
        except (ActivityError, ApplicationError) as exc:
            await self._failed(input, exc)
            raise
        return await self._repaired(input)

    # -- the steps --------------------------------------------------------------------

    async def _claim(self, input: DriftRepairInput) -> DriftRow:
        """The row is this run's to ask about (``pending_approval``), unless it was
        resolved meanwhile."""
        return await resolve(
            input.tenant_id,
            input.drift.drift_id,
            "pending_approval",
            "approval_requested",
            from_statuses=("open", "pending_approval"),
            details={"repair_workflow_id": workflow.info().workflow_id},
        )

    async def _ask_and_repair(self, input: DriftRepairInput, context: FlowContext) -> None:
        if input.drift.kind == "refund_outside":
            action = await self._record_refund(input, context)
        else:
            action = await self._acknowledge(input, context)
        self._repair.action = action

    async def _record_refund(self, input: DriftRepairInput, context: FlowContext) -> str:
        """Approve → the Stripe refund recorded on the Shopify order (no money moves)."""
        order_id = input.drift.order_id or input.drift.actual.get("order_id")
        if not order_id:
            return await self._acknowledge(input, context)
        order = await self._read_shopify_order(str(order_id))
        if order is None:
            # No Shopify order to record it on: a person acknowledges it instead.
            return await self._acknowledge(input, context)
        self._repair.shopify_financial_status = order.financial_status
        if order.financial_status.upper() == "REFUNDED":
            # Shopify already shows every cent back: acknowledge, write nothing.
            await self._acknowledge(input, context)
            return "already_in_shopify"
        self._repair.shopify_refund_id = await self._record_in_shopify(
            input, context, str(order_id)
        )
        return "recorded_in_shopify"

    async def _read_shopify_order(self, order_id: str) -> GetOrderOutput | None:
        """The order in Shopify; None (noted in the trace) when Shopify does not know it."""
        try:
            return await kernel_call(
                self._kernel,
                tools.shopify.GET_ORDER,
                GetOrderInput(order_id=order_id),
                step="shopify_order",
                absent_ok=True,
            )
        except ActivityError as exc:
            if error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
                raise
            self._kernel.decision(workflow.now(), "shopify_order_missing", {"order_id": order_id})
            return None

    async def _record_in_shopify(
        self, input: DriftRepairInput, context: FlowContext, order_id: str
    ) -> str:
        """``shopify.refund_create`` through its approval: the Shopify refund's id."""
        actual = input.drift.actual
        refund_id = str(actual["refund_id"])
        amount, currency = int(actual["amount_minor"]), str(actual["currency"])
        recorded = await call_with_approval(
            self._approvals,
            self._kernel,
            tools.shopify.REFUND_CREATE,
            ShopifyRefundInput(
                order_id=order_id,
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
            notify=approval_notifier(self._kernel),
            timeout_override=context.timing.timeout,
        )
        return recorded.refund_id

    async def _acknowledge(self, input: DriftRepairInput, context: FlowContext) -> str:
        """No tool can repair it: a person acknowledges it (raises ApprovalDenied if not)."""
        drift = input.drift
        amount, currency = drift_amount(drift)
        view = await self._approvals.obtain(
            action=f"acknowledge_{drift.kind}",
            roles=input.acknowledge_roles,
            expires_in=context.timing.timeout or input.acknowledge_timeout,
            amount_minor=amount,
            currency=currency,
            notify=approval_notifier(self._kernel),
            details={
                "drift_id": drift.drift_id,
                "kind": drift.kind,
                "entity_ref": drift.entity_ref,
            },
        )
        if view.status != "approved":
            self._kernel.decision(
                workflow.now(),
                f"approval_{view.status}",
                {"request_id": view.request_id, "drift_id": drift.drift_id},
            )
            raise ApprovalDenied(view)
        self._kernel.decision(
            workflow.now(),
            "drift_acknowledged",
            {"request_id": view.request_id, "approver": view.decided_by},
        )
        return "acknowledged"

    # -- how the flow ends --------------------------------------------------------------

    async def _repaired(self, input: DriftRepairInput) -> DriftRepairResult:
        """Approved and done: the row ``repaired``, with who decided."""
        history = self._approvals.history
        view = history[-1] if history else None
        details: dict[str, Any] = {
            "request_id": view.request_id if view else None,
            "decided_by": view.decided_by if view else None,
        }
        if self._repair.shopify_refund_id is not None:
            details["shopify_refund_id"] = self._repair.shopify_refund_id
        assert self._repair.action is not None
        row = await self._resolve_claimed(input, "repaired", self._repair.action, details)
        self._repair.settled(row, view)
        await self._end("repaired")
        return self._result()

    async def _resolved_meanwhile(self, row: DriftRow) -> DriftRepairResult:
        """Resolved by another repair run, or by hand: nothing to ask."""
        self._repair.settled(row)
        await self._end(row.status)
        return self._result()

    async def _not_approved(self, input: DriftRepairInput, view: ApprovalView) -> DriftRepairResult:
        """Denied: dismissed. Expired: back to open, nothing written, the run fails closed."""
        details = {
            "request_id": view.request_id,
            "decided_by": view.decided_by,
            "reason": view.reason,
        }
        if view.status == "denied":
            row = await self._resolve_claimed(input, "dismissed", "dismissed", details)
            self._repair.settled(row, view)
            await self._end("dismissed")
            return self._result()
        await self._resolve_claimed(input, "open", "approval_expired", details)
        await self._end("expired")
        raise ApplicationError(
            f"approval {view.request_id} expired: drift {input.drift.drift_id} left open "
            "(fail closed)",
            type=ErrorCode.APPROVAL_EXPIRED,
            non_retryable=True,
        )

    async def _failed(self, input: DriftRepairInput, exc: ActivityError | ApplicationError) -> None:
        """The repair failed: the row back to ``open`` for the next run (the caller raises
        again). A cancellation that surfaced from an activity ends ``cancelled``."""
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            return await self._cancelled(input)
        self._error = failure_text(exc)
        details = {"error": self._error[:300]}
        await self._resolve_claimed(input, "open", "repair_failed", details)
        await self._end("failed")

    async def _cancelled(self, input: DriftRepairInput) -> None:
        """Cancelled from the Temporal side while the row was ours: the desk has closed a
        waiting request; the row goes back to ``open`` so the next run asks again. The
        caller re-raises, so the run ends CANCELLED."""
        stopped_in = self._state
        self._kernel.decision(workflow.now(), "workflow_cancelled", {"stopped_in": stopped_in})
        await self._resolve_claimed(input, "open", "repair_cancelled", {"stopped_in": stopped_in})
        await self._end("cancelled")

    async def _resolve_claimed(
        self, input: DriftRepairInput, status: DriftStatus, action: str, details: dict[str, Any]
    ) -> DriftRow:
        return await resolve(
            input.tenant_id,
            input.drift.drift_id,
            status,
            action,
            from_statuses=("pending_approval",),
            details=details,
        )

    # -- platform hooks ---------------------------------------------------------------

    @property
    def _repair(self) -> Repair:
        assert self._facts is not None, "run() has not started"
        return self._facts

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown() if self._facts is not None else {}

    def _result(self) -> DriftRepairResult:
        r = self._repair
        assert r.status is not None and r.action is not None
        return DriftRepairResult(
            workflow_id=workflow.info().workflow_id,
            drift_id=r.drift_id,
            kind=r.kind,
            status=r.status,
            action=r.action,
            approval=r.approval,
            shopify_refund_id=r.shopify_refund_id,
            cost_micros=self._kernel.cost_micros,
        )


def _require_financial(drift: DriftRow) -> None:
    if drift.kind not in FINANCIAL_DRIFT:
        raise ApplicationError(
            f"drift kind {drift.kind} is not financial",
            type=ErrorCode.DRIFT_KIND_INVALID,
            non_retryable=True,
        )


class RepairAsker(Protocol):
    """The input of a flow that finds financial drift (Reconciliation, DailyCloseout):
    whose the rows are and who acknowledges them, handed to each row's repair."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def principal(self) -> str: ...
    @property
    def acknowledge_roles(self) -> tuple[str, ...]: ...
    @property
    def acknowledge_timeout(self) -> timedelta: ...


async def request_repair(
    asker: RepairAsker, context: FlowContext, row: DriftRow, *, found_by: str | None = None
) -> tuple[DriftRow, str | None]:
    """Start a financial row's ReconcileDrift (its approval), unless one is already
    waiting: an ``open`` row is claimed first (``pending_approval``, its details naming
    the repair's id and ``found_by`` when given), the child is parent-close ABANDON (the
    finder does not wait for an approval) with id reuse only after a failure. Returns the
    row as it stands and the child's id (None when its approval is still open, or it
    just finished). Called from the finder's workflow code."""
    info = workflow.info()
    child_id = drift_workflow_id(asker.tenant_id, row.drift_id)
    if row.status == "open":
        details = {"repair_workflow_id": child_id}
        if found_by is not None:
            details["found_by"] = found_by
        row = await resolve(
            asker.tenant_id,
            row.drift_id,
            "pending_approval",
            "approval_requested",
            from_statuses=("open",),
            details=details,
        )
    try:
        await workflow.start_child_workflow(
            ReconcileDrift.run,
            DriftRepairInput(
                tenant_id=asker.tenant_id,
                drift=row,
                context=context,
                reconciliation_id=info.workflow_id,
                principal=asker.principal,
                acknowledge_roles=asker.acknowledge_roles,
                acknowledge_timeout=asker.acknowledge_timeout,
            ),
            id=child_id,
            task_queue=info.task_queue,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
    except WorkflowAlreadyStartedError:
        return row, None
    return row, child_id
