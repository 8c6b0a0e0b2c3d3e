"""WF06 FulfillmentException: a Printful hold or failure triaged, fixed, or escalated.

Started by the order's OrderFulfill (a child, id ``exception:{tenant}:{order}:{event}``)
on ``order_failed`` / ``order_put_hold`` while it waits for the shipment:

the settings (``fulfillment_exception`` of the BusinessConfig) → shopify.get_order +
printful.get_order → triage into a diagnosis (``exception_triage``: cause, evidence,
alternatives with why rejected, recommended action; recorded in the trace as the
``diagnosis`` decision, shown by the ``status`` query, told to OrderFulfill) →

* a safe fix, taken by the flow itself: the address corrected from Shopify's current
  shipping address (printful.update_order; a held order is then released by Printful, a
  failed one re-submitted with printful.confirm_order), or a transient failure
  re-submitted (bounded per order by ``max_retries``);
* otherwise an escalation approval (``options`` fix / cancel_and_refund /
  contact_customer, roles ``escalation_roles``): fix re-reads Shopify, corrects the
  address if it changed and re-submits or waits for the release; cancel_and_refund
  tells OrderFulfill ``cancelling`` and then starts OrderCancellation (a child left
  running when this flow ends, ParentClosePolicy.ABANDON: its stop of OrderFulfill,
  void/refund and Printful cancel must not die with this run); contact_customer emails
  the customer about the problem.
  Expired or denied: nothing is done (fail closed: no money moves), ops are told.

Started by OrderCancellation instead (a child, id ``exception:{tenant}:{order}:cancel-
requested``, topic ``cancel_requested``) when the order to cancel is already in
production at Printful: the triage's ``cancel_in_production`` diagnosis is never acted on
by the flow; the escalation offers contact_customer (the customer is told the order
ships and how to return it, ``contacted``) and cancel_and_refund (``cancelling``: no
new OrderCancellation — the one waiting for this result refunds anyway, through its own
money step and approval rules). Its approval notice is the one notification ops get.

The outcome (``resolved`` / ``cancelling`` / ``contacted`` / ``unresolved``) is the
result OrderFulfill acts on. ``order_remove_hold`` reaches this flow from OrderFulfill
(``printful_event``) while it waits for a fixed hold to be released.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import internal_activity, kernel_call
    from kernel.tools.printful import (
        GetPrintfulOrderOutput,
        PrintfulOrderRef,
        UpdatePrintfulOrderInput,
    )
    from kernel.tools.shopify import GetOrderInput, GetOrderOutput
    from workflows.common.flow import approval_notifier, describe, email_ops, send_email
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import ApprovalView, FlowContext
    from workflows.ids import (
        FULFILLMENT_EXCEPTION,
        ORDER_CANCELLATION,
        PRINTFUL_EVENT,
        cancellation_workflow_id,
    )
    from workflows.orders.exception_triage import differing_fields, triage
    from workflows.orders.models import (
        CANCEL_IN_PRODUCTION_OPTIONS,
        CANCEL_REQUESTED_TOPIC,
        ESCALATION_OPTIONS,
        EXCEPTION_SETTINGS,
        EXCEPTION_UPDATE,
        Diagnosis,
        ExceptionOutcome,
        ExceptionSettings,
        ExceptionSettingsRequest,
        ExceptionUpdate,
        FulfillmentExceptionInput,
        FulfillmentExceptionResult,
        OrderCancellationInput,
    )
    from workflows.orders.order_fulfill import recipient_of

ESCALATION_ACTION = "fulfillment_exception"
# Printful statuses in which the order goes on towards shipment.
MOVING = frozenset({"pending", "inprocess", "partial", "fulfilled"})
PROBLEM = frozenset({"onhold", "failed"})
# From this patch on, the flow tells OrderFulfill ``cancelling`` (the signal delivered)
# before it starts OrderCancellation, so OrderFulfill, stopped by that cancellation,
# waits for this run to end instead of closing first and cancelling it as its child.
REPORTS_CANCELLING = "exception-reports-cancelling"
# The customer email's subject by cause (default: a question about the order).
CUSTOMER_SUBJECTS = {"cancel_in_production": "Your order {name} is already being made"}


@dataclass
class ExceptionFacts:
    """What the flow learnt and did: the result and the ``status`` detail read it."""

    topic: str = ""
    printful_order_id: int | None = None
    printful_status: str | None = None
    diagnosis: Diagnosis | None = None
    actions: list[str] = field(default_factory=list)
    retried: bool = False
    choice: str | None = None
    cancellation_workflow_id: str | None = None
    email_message_id: str | None = None
    outcome: ExceptionOutcome | None = None

    def shown(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "printful_order_id": self.printful_order_id,
            "printful_status": self.printful_status,
            "diagnosis": self.diagnosis.model_dump(mode="json") if self.diagnosis else None,
            "actions": list(self.actions),
            "choice": self.choice,
            "cancellation_workflow_id": self.cancellation_workflow_id,
            "outcome": self.outcome,
        }
        return {k: v for k, v in out.items() if v not in (None, [], "")}


@workflow.defn(name=FULFILLMENT_EXCEPTION.type)
class FulfillmentException(ApprovalFlow):
    def __init__(self) -> None:
        super().__init__()
        self._input: FulfillmentExceptionInput | None = None
        self._facts = ExceptionFacts()
        self._released = False  # order_remove_hold came (forwarded by OrderFulfill)
        self._settings = ExceptionSettings()

    @workflow.signal(name=PRINTFUL_EVENT)
    def printful_event(self, envelope: dict[str, Any]) -> None:
        """Printful's events of the order, forwarded by OrderFulfill: the release counts."""
        if envelope.get("topic") == "order_remove_hold":
            self._released = True

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: FulfillmentExceptionInput) -> FulfillmentExceptionResult:
        self._input = input
        self._facts.topic, self._facts.printful_order_id = input.topic, input.printful_order_id
        context = await self._begin(FULFILLMENT_EXCEPTION, input, order_id=input.order_id)
        try:
            outcome = await self._handle(input, context)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            # A read or a fix failed past its retries: nothing financial was done.
            self._error = describe(exc)
            await self._tell_ops(context, f"the exception flow failed: {self._error}")
            outcome = "unresolved"
        self._facts.outcome = outcome
        await self._end(outcome)
        return self._result()

    async def _handle(
        self, input: FulfillmentExceptionInput, context: FlowContext
    ) -> ExceptionOutcome:
        self._settings = await self._read_settings(input.tenant_id)
        await self._move("triaging")
        order = await self._read_order(input.order_id, "get_order")
        pf = await self._read_printful(input.printful_order_id, "printful_read")
        diagnosis = triage(
            topic=input.topic,
            reason=input.reason,
            printful_status=pf.status,
            shopify_address=recipient_of(order),
            printful_address=pf.recipient,
            retries_done=input.retries_done,
            max_retries=self._settings.max_retries,
        )
        self._facts.diagnosis = diagnosis
        self._kernel.decision(
            workflow.now(), "diagnosis", {"diagnosis": diagnosis.model_dump(mode="json")}
        )
        await self._report("triaged")
        if input.topic == CANCEL_REQUESTED_TOPIC:
            return await self._escalate(input, context, diagnosis)  # nothing to fix
        if pf.status not in PROBLEM:
            # Already moving again (released, or re-submitted by someone) before we looked.
            self._kernel.decision(workflow.now(), "already_resolved", {"state": pf.status})
            return "resolved"
        if diagnosis.recommended == "correct_address" and diagnosis.automatic:
            if await self._correct_address(order, pf, "auto"):
                return "resolved"
        elif diagnosis.recommended == "retry" and diagnosis.automatic:
            self._facts.retried = True
            if await self._resubmit(input.printful_order_id, "auto"):
                return "resolved"
        return await self._escalate(input, context, diagnosis)

    # -- reads ------------------------------------------------------------------------

    async def _read_settings(self, tenant_id: str) -> ExceptionSettings:
        settings = await internal_activity(
            EXCEPTION_SETTINGS,
            ExceptionSettingsRequest(tenant_id=tenant_id),
            result_type=ExceptionSettings,
        )
        assert settings is not None
        return settings

    async def _read_order(self, order_id: str, step: str) -> GetOrderOutput:
        return await kernel_call(
            self._kernel, tools.shopify.GET_ORDER, GetOrderInput(order_id=order_id), step=step
        )

    async def _read_printful(self, pf_id: int, step: str) -> GetPrintfulOrderOutput:
        pf = await kernel_call(
            self._kernel,
            tools.printful.GET_ORDER,
            PrintfulOrderRef(printful_order_id=pf_id),
            step=step,
        )
        self._facts.printful_status = pf.status
        return pf

    # -- the fixes --------------------------------------------------------------------

    async def _correct_address(
        self, order: GetOrderOutput, pf: GetPrintfulOrderOutput, tag: str
    ) -> bool:
        """Send Shopify's current address to Printful, then see the order move on."""
        ship_to = recipient_of(order)
        if ship_to is None or not differing_fields(ship_to, pf.recipient):
            return await self._moving_again(pf.printful_order_id, tag)
        await self._move("correcting_address")
        updated = await kernel_call(
            self._kernel,
            tools.printful.UPDATE_ORDER,
            UpdatePrintfulOrderInput(printful_order_id=pf.printful_order_id, recipient=ship_to),
            step=f"printful_update:{tag}",
        )
        self._facts.printful_status = updated.status
        self._facts.actions.append("address corrected from Shopify")
        return await self._moving_again(pf.printful_order_id, tag)

    async def _resubmit(self, pf_id: int, tag: str) -> bool:
        await self._move("resubmitting")
        confirmed = await kernel_call(
            self._kernel,
            tools.printful.CONFIRM_ORDER,
            PrintfulOrderRef(printful_order_id=pf_id),
            step=f"printful_resubmit:{tag}",
        )
        self._facts.printful_status = confirmed.status
        self._facts.actions.append("re-submitted to Printful")
        return confirmed.status in MOVING

    async def _moving_again(self, pf_id: int, tag: str) -> bool:
        """After a fix: a failed order is re-submitted; a held one is Printful's to release
        (waited for, bounded by ``release_wait``)."""
        pf = await self._read_printful(pf_id, f"printful_check:{tag}")
        if pf.status == "failed":
            return await self._resubmit(pf_id, tag)
        if pf.status != "onhold" or self._released:
            return pf.status in MOVING or self._released
        await self._move("awaiting_release")
        try:
            await workflow.wait_condition(
                lambda: self._released, timeout=self._settings.release_wait
            )
        except TimeoutError:
            self._kernel.decision(workflow.now(), "hold_not_released", {"note": str(pf_id)})
            return False
        return True

    # -- the escalation ---------------------------------------------------------------

    async def _escalate(
        self, input: FulfillmentExceptionInput, context: FlowContext, diagnosis: Diagnosis
    ) -> ExceptionOutcome:
        await self._move("awaiting_decision")
        view = await self._ask(input, context, diagnosis)
        if view.status != "approved" or view.choice is None:
            self._kernel.decision(
                workflow.now(),
                f"escalation_{view.status}",
                {"request_id": view.request_id, "approver": view.decided_by},
            )
            await self._tell_ops(
                context,
                f"escalation {view.request_id} {view.status}: nothing was done "
                "(no money moved); the order stays as Printful has it",
            )
            return "unresolved"
        self._facts.choice = view.choice
        self._kernel.decision(
            workflow.now(),
            "escalation_decided",
            {"request_id": view.request_id, "action": view.choice, "approver": view.decided_by},
        )
        if view.choice == "cancel_and_refund":
            return await self._cancel_and_refund(input)
        if view.choice == "contact_customer":
            return await self._contact_customer(input, context)
        return await self._fix(input, context)

    async def _ask(
        self, input: FulfillmentExceptionInput, context: FlowContext, diagnosis: Diagnosis
    ) -> ApprovalView:
        ask = self._approvals.obtain(
            action=ESCALATION_ACTION,
            roles=self._settings.escalation_roles,
            expires_in=context.timing.timeout or self._settings.escalation_timeout,
            amount_minor=None,
            currency=None,
            notify=approval_notifier(self._kernel),
            details={
                "order_id": input.order_id,
                "printful_order_id": input.printful_order_id,
                "topic": input.topic,
                "diagnosis": diagnosis.model_dump(mode="json"),
            },
            options=(
                CANCEL_IN_PRODUCTION_OPTIONS
                if input.topic == CANCEL_REQUESTED_TOPIC
                else ESCALATION_OPTIONS
            ),
        )
        # The request id is known once the request is open: tell OrderFulfill's status.
        task = asyncio.ensure_future(ask)
        try:
            await workflow.wait_condition(
                lambda: self._approvals.current is not None or task.done()
            )
            await self._report("awaiting_decision")
        except asyncio.CancelledError:
            # Cancelled before the wait below: the request must still be closed (the desk
            # does it when its own wait is cancelled), then the cancellation goes on.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        return await task

    async def _fix(
        self, input: FulfillmentExceptionInput, context: FlowContext
    ) -> ExceptionOutcome:
        """The approver fixed it at the source: re-read Shopify, correct the address if it
        changed, re-submit a failed order or wait for a held one's release."""
        await self._move("fixing")
        order = await self._read_order(input.order_id, "get_order:fix")
        pf = await self._read_printful(input.printful_order_id, "printful_read:fix")
        if pf.status not in PROBLEM or await self._correct_address(order, pf, "fix"):
            return "resolved"
        await self._tell_ops(context, "fix chosen, but the order is still held or failed")
        return "unresolved"

    async def _cancel_and_refund(self, input: FulfillmentExceptionInput) -> ExceptionOutcome:
        """OrderCancellation, left running when this flow ends: it stops OrderFulfill,
        cancels at Printful and voids or refunds (its own approvals apply)."""
        await self._move("cancelling")
        target = cancellation_workflow_id(input.tenant_id, input.order_id)
        self._facts.cancellation_workflow_id = target
        if input.topic == CANCEL_REQUESTED_TOPIC:
            # That cancellation started this flow and waits for this outcome to refund.
            self._facts.actions.append("refund left to the cancellation")
            return "cancelling"
        if workflow.patched(REPORTS_CANCELLING):
            await self._report("cancelling")
        try:
            await workflow.start_child_workflow(
                ORDER_CANCELLATION.type,
                OrderCancellationInput(
                    tenant_id=input.tenant_id,
                    order_id=input.order_id,
                    payment_intent_id=input.payment_intent_id,
                    reason="OTHER",
                    principal=self._kernel.principal,
                ),
                id=target,
                task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            self._kernel.decision(workflow.now(), "cancellation_running", {"note": target})
        self._facts.actions.append("cancellation started")
        return "cancelling"

    async def _contact_customer(
        self, input: FulfillmentExceptionInput, context: FlowContext
    ) -> ExceptionOutcome:
        await self._move("contacting_customer")
        order = await self._read_order(input.order_id, "get_order:contact")
        if not order.customer_email:
            await self._tell_ops(context, "contact_customer chosen, but the order has no email")
            return "unresolved"
        diagnosis = self._facts.diagnosis
        subject = CUSTOMER_SUBJECTS.get(
            diagnosis.cause if diagnosis else "", "A question about your order {name}"
        )
        sent = await send_email(
            self._kernel,
            to=order.customer_email,
            template="fulfillment_problem",
            subject=subject.format(name=order.order_name),
            step="email_customer",
            variables={
                "order_name": order.order_name,
                "problem": diagnosis.cause if diagnosis else "unknown",
            },
        )
        self._facts.email_message_id = sent.message_id
        self._facts.actions.append("customer contacted")
        return "contacted"

    # -- telling ----------------------------------------------------------------------

    async def _tell_ops(self, context: FlowContext, detail: str) -> None:
        """Best effort: a mail that cannot go out must not hide the outcome."""
        if not context.ops_email:
            self._kernel.decision(workflow.now(), "ops_not_notified", {})
            return
        assert self._input is not None
        failed = await email_ops(
            self._kernel,
            to=context.ops_email,
            template="ops_alert",
            subject=f"Order {self._input.order_id}: fulfillment exception",
            step="ops:exception",
            variables={
                "kind": "fulfillment_exception",
                "order_id": self._input.order_id,
                "detail": detail[:1000],
                "workflow_id": workflow.info().workflow_id,
            },
        )
        if failed is not None:
            workflow.logger.warning("ops alert not sent: %s", failed)
            self._kernel.decision(workflow.now(), "ops_not_notified", {})

    async def _report(self, state: str) -> None:
        """Tell the parent OrderFulfill where this stands (best effort)."""
        parent = workflow.info().parent
        if parent is None:
            return
        d = self._facts.diagnosis
        current = self._approvals.current
        update = ExceptionUpdate(
            workflow_id=workflow.info().workflow_id,
            state=state,
            cause=d.cause if d else None,
            recommended=d.recommended if d else None,
            summary=d.summary if d else None,
            request_id=current.request_id if current else None,
        )
        try:
            handle = workflow.get_external_workflow_handle(parent.workflow_id)
            await handle.signal(EXCEPTION_UPDATE, update)
        except FailureError as exc:
            workflow.logger.warning("parent %s not told: %s", parent.workflow_id, exc)

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    def _result(self) -> FulfillmentExceptionResult:
        f = self._facts
        history = self._approvals.history
        assert f.outcome is not None
        return FulfillmentExceptionResult(
            workflow_id=workflow.info().workflow_id,
            state=f.outcome,
            diagnosis=f.diagnosis,
            actions=tuple(f.actions),
            retried=f.retried,
            choice=f.choice,
            approval=history[-1] if history else None,
            cancellation_workflow_id=f.cancellation_workflow_id,
            email_message_id=f.email_message_id,
            cost_micros=self._kernel.cost_micros,
        )
