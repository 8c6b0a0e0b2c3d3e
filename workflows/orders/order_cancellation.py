"""WF04 OrderCancellation: take an order back before it is made, and give the money back.

shopify.get_order → survey (printful.get_order by ``@{external_id}``,
stripe.get_payment_intent) → [approval for the money step when the HITL rule asks] →
stop a running OrderFulfill (``cancel_requested``; it answers ``fulfill_stopped``) and
survey again → printful.cancel_order → stripe.cancel_payment (an uncaptured
authorisation is voided) or stripe.create_refund (a captured one is refunded) →
shopify.cancel_order → the customer's email.

In production: a Printful order already in production (or shipped) cannot be cancelled.
Nothing is cancelled and no money moves; the order goes to a FulfillmentException child
(WF06, topic ``cancel_requested``, id ``exception:{tenant}:{order}:cancel-requested``)
and this flow waits (state ``exception``) for its outcome — the approver's decision, not
this flow, says whether money goes back for goods already being made:

* ``contact_customer``: the exception flow tells the customer the order ships and how to
  return it; OrderFulfill goes on to the shipment; this run ends ``exception``
  (Shopify not cancelled, no money moved).
* ``cancel_and_refund``: this run goes on as a cancellation that leaves the Printful
  order alone (it ships anyway): the money step's own approval (its HITL rule), stop
  OrderFulfill, survey again (and ask again if the money step changed), void or refund,
  cancel in Shopify, the customer's email (saying it may still arrive); ends ``cancelled``.
* denied, expired or failed: ``unresolved``, nothing done (fail closed); the exception
  flow told ops; this run ends ``exception``. A child that cannot run at all: ops are
  emailed from here. A child cancelled (with this run, or by an operator): this run is
  given up too (``abandoned``, CANCELED).

The same hand-over takes a Printful refusal of the cancel itself (the order went into
production between the survey and the cancel, after OrderFulfill was stopped; there a
``contact_customer`` leaves no flow to record the shipment in Shopify — ops see
``fulfillment_stopped`` in the exception report).

The exception's approval notice replaces the ops email this branch sent before (one
notification). The child's ParentClosePolicy is REQUEST_CANCEL: its cancel_and_refund is
carried out by this run, so a decision taken after this run is gone would do nothing —
the child closes its request and ends instead. Runs recorded before the
``cancellation-routes-to-exception`` patch keep the old branch (ops emailed, ends
``exception``).

Exception branch (ops are emailed, the run ends ``exception`` and the result says why,
``CancellationException``): a paid order whose PaymentIntent cannot be found and a
payment still ``processing``.

Order of the steps, and compensation. Nothing this flow does can be undone at the
providers: Printful has no un-cancel (and refuses a second order with the same external
id), a void or a refund is final, a Shopify cancellation is final, an OrderFulfill that
stopped stays stopped. So the flow decides everything it can before it changes anything:
it reads, routes to the exception branch, and obtains the human approval for the money
step first — a denial (``rejected``) or an expiry (fails closed, ``APPROVAL_EXPIRED``)
leaves the order exactly as it was, OrderFulfill still running. Only then does it stop
OrderFulfill; because the fulfilment may have moved meanwhile (captured, confirmed), it
surveys again and, if the money step changed, asks again. From the stop on, the one
compensation registered with the saga is forward: if a later step fails, ops get an
email listing what was done and what was not (a half-cancelled order needs a person).
Nothing at all is compensated after money has moved — the remaining steps (Shopify,
email) are retried by Temporal instead.

Cancelled from the Temporal side (`temporal workflow cancel`): a pending approval is
withdrawn, ops are alerted if the flow had already begun to change the order, and the
run ends ``cancelled`` (Temporal status CANCELED).

The ``order_state`` projection is written only once this flow owns the order (after the
stop); before that the running OrderFulfill owns it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from kernel import tools
    from kernel.call import kernel_call, preview, refusal
    from kernel.codes import ErrorCode
    from kernel.contracts import ToolContract
    from kernel.gate import HitlRequirement
    from kernel.tools.printful import PrintfulOrderRef
    from kernel.tools.shopify import CancelOrderInput, GetOrderInput, GetOrderOutput
    from kernel.tools.stripe import (
        CancelPaymentInput,
        CancelPaymentOutput,
        CreateRefundInput,
        CreateRefundOutput,
        GetPaymentIntentInput,
        GetPaymentIntentOutput,
    )
    from workflows.common.approvals import ApprovalDenied, Notifier, call_with_approval
    from workflows.common.flow import Saga, approval_notifier, describe, error_type, send_email
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import ApprovalView, FlowContext
    from workflows.common.projection import OrderProjection
    from workflows.ids import (
        CANCEL_REQUESTED,
        FULFILL_STOPPED,
        FULFILLMENT_EXCEPTION,
        ORDER_CANCELLATION,
        SHOPIFY_EVENT,
        exception_workflow_id,
        order_workflow_id,
        printful_external_id,
    )
    from workflows.orders.models import (
        CANCEL_REQUESTED_KEY,
        EXCEPTION_UPDATE,
        CancellationException,
        CancellationState,
        CancelRequest,
        ExceptionUpdate,
        FulfillmentExceptionInput,
        FulfillmentExceptionResult,
        FulfillStopped,
        OrderCancellationInput,
        OrderCancellationResult,
    )

# Printful cancels only before production; any other status (inprocess, partial,
# fulfilled, a status we do not know) is treated as "in production": fail closed.
PRINTFUL_CANCELLABLE = frozenset({"draft", "pending", "failed", "onhold"})
PRINTFUL_CANCELED = "canceled"
# PaymentIntent statuses a void applies to: an authorisation, or a payment never made.
PI_VOIDABLE = frozenset(
    {"requires_capture", "requires_payment_method", "requires_confirmation", "requires_action"}
)
# Shopify financial statuses with no money to give back.
SHOPIFY_UNPAID = frozenset({"PENDING", "VOIDED", "REFUNDED", "EXPIRED"})
PROJECTION_ATTEMPTS = 3
ROUTES_TO_EXCEPTION = "cancellation-routes-to-exception"  # the workflow.patched id

ExceptionKind = Literal["printful_in_production", "payment_unlocated", "payment_unsettled"]
MoneyAction = Literal["void", "refund", "none"]


class _Escalate(Exception):
    """The order goes to people (the exception branch); caught in ``run``."""

    def __init__(self, kind: ExceptionKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: ExceptionKind = kind
        self.detail = detail


class _Handed(Exception):
    """The in-production order stays with the exception flow's outcome (the customer was
    told it ships, or nobody decided): the run ends ``exception``; caught in ``run``."""


class _Reject(Exception):
    """The request itself is wrong (e.g. the payment is another order's); caught in ``run``."""


@dataclass(frozen=True)
class _Survey:
    printful_order_id: int | None
    printful_status: str | None
    intent: GetPaymentIntentOutput | None


@dataclass(frozen=True)
class _Money:
    """The money step: void, refund, or nothing."""

    action: MoneyAction
    amount_minor: int
    currency: str
    tool: ToolContract[Any, Any] | None = None
    input: BaseModel | None = None
    step: str = ""

    @property
    def approval_action(self) -> str:
        return f"{self.action}_payment"


@dataclass
class Cancellation:
    """What the flow has learnt and done so far: the result, the ``status`` query's detail
    and the ``cancellation`` part of the order's projection are all read from here."""

    reason: str | None = None  # the request's (CUSTOMER, FRAUD, ...)
    order_name: str | None = None
    total_minor: int | None = None
    currency: str | None = None
    payment_intent_id: str | None = None
    surveyed: bool = False  # from the first survey on, Printful's facts show (None too)
    printful_order_id: int | None = None
    printful_status: str | None = None
    payment_status: str | None = None
    payment_action: MoneyAction | None = None
    amount_minor: int | None = None
    fulfillment_stopped: bool | None = None
    fulfillment_state: str | None = None
    stripe_refund_id: str | None = None
    shopify_cancelled: bool | None = None
    email_message_id: str | None = None
    exception: ExceptionKind | None = None
    exception_workflow_id: str | None = None
    exception_state: str | None = None  # the child's state (its updates), then its outcome
    exception_request_id: str | None = None
    ops_message_id: str | None = None
    compensated: list[str] | None = None
    cancelled_in: str | None = None  # cancelled from the Temporal side, in this state
    shopify_events: list[str] | None = None
    # Not shown: the irreversible steps taken (for ops), and how the run ended otherwise.
    done: list[str] = field(default_factory=list)
    why: str | None = None  # the result's ``reason`` (rejected, expired, exception)
    report: CancellationException | None = None

    HIDDEN = frozenset({"surveyed", "done", "why", "report"})
    SURVEY = frozenset({"printful_order_id", "printful_status"})

    def shown(self) -> dict[str, Any]:
        """The detail operators see: the facts known so far (Printful's once surveyed,
        even when there is no Printful order)."""
        return {
            n: v
            for n in (f.name for f in fields(self) if f.name not in self.HIDDEN)
            if (v := getattr(self, n)) is not None or (self.surveyed and n in self.SURVEY)
        }


@workflow.defn(name=ORDER_CANCELLATION.type)
class OrderCancellation(ApprovalFlow):
    def __init__(self) -> None:
        super().__init__()
        self._order_id = ""
        self._facts = Cancellation()
        self._saga = Saga()
        self._answer: FulfillStopped | None = None
        self._owns_projection = False
        self._rows: OrderProjection | None = None  # keeps what OrderFulfill wrote
        # The exception flow's approver chose cancel_and_refund: the Printful order ships
        # anyway (it is not cancelled there) and the money goes back.
        self._refund_in_production = False
        self._surveyed: _Survey | None = None  # the latest survey

    # -- handlers ---------------------------------------------------------------------

    @workflow.signal(name=FULFILL_STOPPED)
    def fulfill_stopped(self, answer: FulfillStopped) -> None:
        """OrderFulfill's answer to ``cancel_requested``; only this order's flow counts."""
        if answer.workflow_id == order_workflow_id(self._tenant, self._order_id):
            self._answer = answer

    @workflow.signal(name=EXCEPTION_UPDATE)
    def exception_update(self, update: ExceptionUpdate) -> None:
        """The FulfillmentException child's progress (its request id shows in ``status``)."""
        f = self._facts
        if update.workflow_id == f.exception_workflow_id:
            f.exception_state, f.exception_request_id = update.state, update.request_id

    @workflow.signal(name=SHOPIFY_EVENT)
    def shopify_event(self, envelope: dict[str, Any]) -> None:
        """The ingress's ``orders/cancelled`` (the start signal, or a repeat): the run
        already does what it asks, so it is only noted."""
        f = self._facts
        f.shopify_events = [*(f.shopify_events or []), str(envelope.get("topic"))]

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderCancellationInput) -> OrderCancellationResult:
        self._order_id = input.order_id
        context = await self._begin(ORDER_CANCELLATION, input, order_id=input.order_id)
        self._facts.reason = input.reason
        try:
            await self._cancel_or_hand_over(input, context)
        except _Escalate as esc:
            return await self._escalated(context, esc)
        except _Handed:
            return await self._ended("exception")
        except _Reject as rej:
            return await self._rejected(str(rej))
        except ApprovalDenied as denied:
            return await self._denied(denied.view)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            await self._failed(exc)
            raise
        return await self._ended("cancelled")

    async def _cancel_or_hand_over(
        self, input: OrderCancellationInput, context: FlowContext
    ) -> None:
        """The cancellation; an order in production goes to the exception flow, and on
        its cancel_and_refund the cancellation is taken again, refunding anyway."""
        order = await self._read_order(input)
        pi_id = input.payment_intent_id or order.payment_intent_id
        if pi_id is not None:
            self._facts.payment_intent_id = pi_id
        try:
            await self._cancel_order(input, context, order)
        except _Escalate as esc:
            if esc.kind != "printful_in_production" or not workflow.patched(ROUTES_TO_EXCEPTION):
                raise
            await self._hand_over(context, esc)  # raises _Handed unless cancel_and_refund
            await self._cancel_order(input, context, order, again=True)

    async def _cancel_order(
        self,
        input: OrderCancellationInput,
        context: FlowContext,
        order: GetOrderOutput,
        again: bool = False,
    ) -> None:
        """``again``: after the exception's cancel_and_refund, from the survey that found
        the order in production (the approval is re-checked on a fresh survey after the
        stop: a survey more would be the same reads three times, a loop to the kernel)."""
        notify = approval_notifier(self._kernel)
        pi_id = self._facts.payment_intent_id

        # Decide everything before changing anything.
        if again:
            assert self._surveyed is not None
            survey = self._surveyed
        else:
            await self._move("surveying")
            survey = await self._survey(input, pi_id, 1)
        money = self._plan(input, order, survey)
        await self._approve(context, money, notify)

        # From here on this flow changes things, and none of it can be undone.
        if await self._take_over(input, context) or again:
            # OrderFulfill was running and may have captured or confirmed meanwhile.
            survey = await self._survey(input, pi_id, 3 if again else 2)
            money = self._plan(input, order, survey)
            await self._approve(context, money, notify)
        await self._cancel_printful(survey)
        await self._void_or_refund(context, money, notify)
        await self._cancel_in_shopify(input)
        if context.customer_emails and order.customer_email:
            await self._tell_customer(order, money)
        self._saga.clear()

    # -- deciding (reads only) ----------------------------------------------------------

    async def _read_order(self, input: OrderCancellationInput) -> GetOrderOutput:
        order = await kernel_call(
            self._kernel,
            tools.shopify.GET_ORDER,
            GetOrderInput(order_id=input.order_id),
            step="get_order",
        )
        f = self._facts
        f.order_name, f.total_minor = order.order_name, order.total_minor
        f.currency = order.currency
        return order

    async def _survey(self, input: OrderCancellationInput, pi_id: str | None, n: int) -> _Survey:
        """Where the order stands at Printful and at Stripe (reads only)."""
        pf_id, pf_status = await self._printful_lookup(input, n)
        f = self._facts
        f.surveyed, f.printful_order_id, f.printful_status = True, pf_id, pf_status
        intent: GetPaymentIntentOutput | None = None
        if pi_id is not None:
            intent = await kernel_call(
                self._kernel,
                tools.stripe.GET_PAYMENT_INTENT,
                GetPaymentIntentInput(payment_intent_id=pi_id, order_id=input.order_id),
                step=f"payment_lookup:{n}",
            )
            f.payment_status = intent.status
        self._surveyed = _Survey(pf_id, pf_status, intent)
        return self._surveyed

    async def _printful_lookup(
        self, input: OrderCancellationInput, n: int
    ) -> tuple[int | None, str | None]:
        """The Printful order of this order (by external id), or none."""
        ref = PrintfulOrderRef(external_id=printful_external_id(input.tenant_id, input.order_id))
        try:
            found = await kernel_call(
                self._kernel, tools.printful.GET_ORDER, ref, step=f"printful_lookup:{n}"
            )
        except ActivityError as exc:
            if error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
                raise
            return None, None
        return found.printful_order_id, found.status

    def _plan(self, input: OrderCancellationInput, order: GetOrderOutput, s: _Survey) -> _Money:
        """Route to the exception branch, or say what the money step is."""
        if (
            s.printful_status is not None
            and s.printful_status not in (PRINTFUL_CANCELLABLE | {PRINTFUL_CANCELED})
            and not self._refund_in_production
        ):
            raise _Escalate(
                "printful_in_production",
                f"Printful order {s.printful_order_id} is {s.printful_status}: an order in "
                "production cannot be cancelled",
            )
        money = _money_step(input, order, s.intent)
        f = self._facts
        f.payment_action, f.amount_minor = money.action, money.amount_minor
        f.currency = money.currency
        return money

    async def _approve(self, context: FlowContext, money: _Money, notify: Notifier) -> None:
        """Get the money step's approval now, before anything changes (the call itself
        later reuses it, bound to its own key). A gate refusal other than "needs
        approval" fails here too, while nothing has been done."""
        if money.action == "none":
            return
        assert money.input is not None and money.tool is not None
        decision = preview(self._kernel, money.tool, money.input, step=money.step)
        if decision.allowed:
            return
        if decision.code is not ErrorCode.APPROVAL_REQUIRED:
            raise refusal(decision)
        if self._approved_already(money):
            return
        assert decision.hitl is not None
        await self._move("awaiting_approval")
        view = await self._ask(context, money, decision.hitl, notify)
        if view.status != "approved":
            self._kernel.decision(
                workflow.now(),
                f"approval_{view.status}",
                {
                    "request_id": view.request_id,
                    "tool": money.tool.ref,
                    "decided_by": view.decided_by,
                },
            )
            raise ApprovalDenied(view)

    def _approved_already(self, money: _Money) -> bool:
        """The request this run approved covers this money step (same action, amount)."""
        current = self._approvals.current
        return (
            current is not None
            and current.status == "approved"
            and current.action == money.approval_action
            and current.amount_minor == money.amount_minor
        )

    async def _ask(
        self, context: FlowContext, money: _Money, hitl: HitlRequirement, notify: Notifier
    ) -> ApprovalView:
        assert money.tool is not None
        rule = hitl.rule
        return await self._approvals.obtain(
            action=money.approval_action,
            roles=hitl.approver_roles,
            expires_in=context.timing.timeout or (rule.timeout if rule else timedelta(hours=24)),
            amount_minor=money.amount_minor,
            currency=money.currency,
            notify=notify,
            details={"tool": money.tool.ref, "step": money.step, "order_id": self._order_id},
        )

    # -- changing (none of it can be undone) ------------------------------------------

    async def _take_over(self, input: OrderCancellationInput, context: FlowContext) -> bool:
        """Stop OrderFulfill and own the order from here on. Undo: none is possible, so
        ops are told what was done if a later step fails. True: OrderFulfill was
        running (it may have moved since the first survey)."""
        await self._move("stopping_fulfillment")
        self._saga.add("alert_ops", lambda: self._alert_incomplete(context))
        delivered = await self._stop_fulfillment(input)
        self._owns_projection = True
        return delivered

    async def _stop_fulfillment(self, input: OrderCancellationInput) -> bool:
        """Tell a running OrderFulfill to stop and wait (bounded) for its answer. False:
        no OrderFulfill was running (never started, or closed) — nothing to wait for."""
        run = self._kernel
        target = order_workflow_id(input.tenant_id, input.order_id)
        request = CancelRequest(reason=input.reason, requested_by=run.principal)
        try:
            await workflow.get_external_workflow_handle(target).signal(CANCEL_REQUESTED, request)
        except FailureError:
            run.decision(workflow.now(), "fulfillment_not_running", {"workflow_id": target})
            return False
        try:
            await workflow.wait_condition(lambda: self._answer is not None, timeout=input.stop_wait)
        except TimeoutError:
            # Go on: every later step reads the provider first and is idempotent.
            run.decision(workflow.now(), "fulfillment_stop_unconfirmed", {"workflow_id": target})
            return True
        answer = self._answer
        assert answer is not None
        self._facts.fulfillment_stopped = answer.stopped
        self._facts.fulfillment_state = answer.state
        run.decision(
            workflow.now(),
            "fulfillment_stopped" if answer.stopped else "fulfillment_finished",
            {"workflow_id": target, "state": answer.state},
        )
        if answer.stopped:
            self._facts.done.append(f"fulfilment stopped (in {answer.state})")
        return True

    async def _cancel_printful(self, survey: _Survey) -> None:
        """Cancel the Printful order, if there is one not cancelled yet. Refused because
        it went into production since the survey: the exception branch."""
        pf_id = survey.printful_order_id
        if pf_id is None or survey.printful_status == PRINTFUL_CANCELED:
            return
        if self._refund_in_production and survey.printful_status not in PRINTFUL_CANCELLABLE:
            self._kernel.decision(
                workflow.now(), "printful_ships_anyway", {"state": survey.printful_status}
            )
            return
        await self._move("cancelling_fulfillment")
        try:
            out = await kernel_call(
                self._kernel,
                tools.printful.CANCEL_ORDER,
                PrintfulOrderRef(printful_order_id=pf_id),
                step="printful_cancel",
            )
        except ActivityError as exc:
            if error_type(exc) == ErrorCode.PROVIDER_STATE_CONFLICT:
                if self._refund_in_production:  # went into production since: it ships
                    self._kernel.decision(workflow.now(), "printful_ships_anyway", {})
                    return
                raise _Escalate(
                    "printful_in_production",
                    f"Printful refused to cancel order {pf_id}: {describe(exc)}",
                ) from None
            raise
        self._facts.printful_status = out.status
        self._facts.done.append(f"Printful order {pf_id} cancelled")

    async def _void_or_refund(self, context: FlowContext, money: _Money, notify: Notifier) -> None:
        """The money step (its approval, if one was needed, is reused)."""
        if money.action == "none":
            return
        assert money.input is not None and money.tool is not None
        void = money.action == "void"
        await self._move("voiding" if void else "refunding")
        moved = await call_with_approval(
            self._approvals,
            self._kernel,
            money.tool,
            money.input,
            step=money.step,
            action=money.approval_action,
            amount_minor=money.amount_minor,
            currency=money.currency,
            notify=notify,
            timeout_override=context.timing.timeout,
        )
        if isinstance(moved, CreateRefundOutput):
            self._facts.stripe_refund_id = moved.refund_id
        elif isinstance(moved, CancelPaymentOutput):
            self._facts.payment_status = moved.status
        self._facts.done.append("payment voided" if void else "payment refunded")

    async def _cancel_in_shopify(self, input: OrderCancellationInput) -> None:
        await self._move("cancelling_order")
        await kernel_call(
            self._kernel,
            tools.shopify.CANCEL_ORDER,
            # Our own email tells the customer (with the money part), not Shopify's.
            CancelOrderInput(order_id=input.order_id, reason=input.reason, notify_customer=False),
            step="shopify_cancel",
        )
        self._facts.shopify_cancelled = True
        self._facts.done.append("Shopify order cancelled")

    async def _tell_customer(self, order: GetOrderOutput, money: _Money) -> None:
        assert order.customer_email is not None
        await self._move("notifying")
        variables = {
            "order_name": order.order_name,
            "payment_action": money.action,
            "amount_minor": str(money.amount_minor),
            "currency": money.currency,
        }
        if self._refund_in_production:
            variables["still_ships"] = "true"  # made already: it may still arrive
        sent = await send_email(
            self._kernel,
            to=order.customer_email,
            template="order_cancelled",
            subject=f"Your order {order.order_name} is cancelled",
            step="email_cancelled",
            variables=variables,
        )
        self._facts.email_message_id = sent.message_id

    # -- telling ops ------------------------------------------------------------------

    async def _alert_incomplete(self, context: FlowContext) -> None:
        """The saga's one (forward) compensation: a half-cancelled order needs a person."""
        done = ", ".join(self._facts.done) or "nothing"
        cause = self._error or (
            "a cancellation of the workflow" if self._facts.cancelled_in else "a refusal"
        )
        await self._alert_ops(
            context,
            "cancellation_incomplete",
            f"the cancellation stopped after: {done}; failed with: {cause}",
        )

    async def _alert_ops(self, context: FlowContext, kind: str, detail: str) -> None:
        """Email ops (best effort: a mail that cannot go out must not hide the outcome)."""
        if not context.ops_email:
            self._kernel.decision(workflow.now(), "ops_not_notified", {"kind": kind})
            return
        try:
            sent = await send_email(
                self._kernel,
                to=context.ops_email,
                template="ops_alert",
                category="ops",
                subject=f"Order {self._facts.order_name or self._order_id}: "
                f"{kind.replace('_', ' ')}",
                step=f"ops:{kind}",
                variables={
                    "kind": kind,
                    "order_id": self._order_id,
                    "detail": detail[:1000],
                    "workflow_id": workflow.info().workflow_id,
                },
            )
            self._facts.ops_message_id = sent.message_id
        except (ActivityError, ApplicationError) as exc:
            workflow.logger.warning("ops alert %s not sent: %s", kind, exc)
            self._kernel.decision(workflow.now(), "ops_not_notified", {"kind": kind})

    # -- how the flow ends otherwise --------------------------------------------------

    async def _to_exception(self, esc: _Escalate) -> None:
        """Nothing more is cancelled and no money moves: the report, the trace, the state."""
        self._saga.clear()  # the exception report tells ops everything the alert would
        f = self._facts
        f.report = CancellationException(
            tenant_id=self._tenant,
            order_id=self._order_id,
            kind=esc.kind,
            detail=esc.detail,
            printful_order_id=f.printful_order_id,
            printful_status=f.printful_status,
            payment_intent_id=f.payment_intent_id,
            fulfillment_stopped=self._stopped_fulfilment,
        )
        self._kernel.decision(workflow.now(), "exception", {"kind": esc.kind, "done": list(f.done)})
        f.exception = esc.kind
        await self._move("exception")

    async def _hand_over(self, context: FlowContext, esc: _Escalate) -> None:
        """The order in production goes to a FulfillmentException child, waited for.
        Returns when its approver chose cancel_and_refund; otherwise raises ``_Handed``
        (the customer was told it ships, or nothing was decided: fail closed)."""
        await self._to_exception(esc)
        f = self._facts
        assert f.printful_order_id is not None  # in production: there is a Printful order
        child_id = exception_workflow_id(self._tenant, self._order_id, CANCEL_REQUESTED_KEY)
        f.exception_workflow_id = child_id
        try:
            outcome = await workflow.execute_child_workflow(
                FULFILLMENT_EXCEPTION.type,
                FulfillmentExceptionInput(
                    tenant_id=self._tenant,
                    order_id=self._order_id,
                    printful_order_id=f.printful_order_id,
                    event_id=CANCEL_REQUESTED_KEY,
                    topic="cancel_requested",
                    reason=esc.detail[:1000],
                    payment_intent_id=f.payment_intent_id,
                ),
                id=child_id,
                task_queue=workflow.info().task_queue,
                result_type=FulfillmentExceptionResult,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            )
        except ChildWorkflowError as exc:
            if isinstance(exc.cause, CancelledError):
                # Cancelled with this run (REQUEST_CANCEL), or by an operator: given up.
                raise asyncio.CancelledError() from None
            # The exception flow could not run: ops are told here instead (nothing done).
            f.exception_state = "failed"
            await self._alert_ops(context, esc.kind, f"{esc.detail}; exception flow: {exc}")
            f.why = esc.detail
            raise _Handed() from None
        f.exception_state = outcome.state
        self._kernel.decision(
            workflow.now(),
            "exception_outcome",
            {"note": child_id, "state": outcome.state, "action": outcome.choice},
        )
        if outcome.state == "cancelling":
            self._refund_in_production = True
            return
        told = "the customer was told it ships" if outcome.state == "contacted" else "undecided"
        f.why = f"{esc.detail} ({told}; see {child_id})"
        raise _Handed()

    async def _escalated(self, context: FlowContext, esc: _Escalate) -> OrderCancellationResult:
        """The exception branch: nothing more is cancelled, no money moves, ops are told."""
        await self._to_exception(esc)
        f = self._facts
        detail = esc.detail
        if f.done:
            detail += f" (already done: {', '.join(f.done)})"
        await self._alert_ops(context, esc.kind, detail)
        f.why = esc.detail
        return await self._ended("exception")

    async def _rejected(self, why: str) -> OrderCancellationResult:
        """The request itself is wrong: nothing was done for it."""
        self._error = why
        await self._saga.compensate(self._kernel)
        self._facts.why = why
        return await self._ended("rejected")

    async def _denied(self, view: ApprovalView) -> OrderCancellationResult:
        """An approver denied the money step (``rejected``), or nobody decided in time
        (``expired``, and the run fails closed)."""
        self._error = f"approval {view.request_id} {view.status}"
        await self._saga.compensate(self._kernel)
        if view.status == "denied":
            self._facts.why = view.reason or self._error
            return await self._ended("rejected")
        self._facts.why = self._error
        await self._ended("expired")
        raise ApplicationError(
            f"approval {view.request_id} expired: nothing was cancelled or paid back (fail closed)",
            type=ErrorCode.APPROVAL_EXPIRED,
            non_retryable=True,
        ) from None

    async def _failed(self, exc: ActivityError | ApplicationError) -> None:
        """A step failed: ops are told what was done (if anything was), the run ends
        ``failed`` and the caller raises again. A cancelled activity is a cancellation."""
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            return await self._cancelled()
        self._error = describe(exc)
        await self._saga.compensate(self._kernel)
        self._facts.compensated = self._saga.done
        await self._end("failed")

    async def _cancelled(self) -> None:
        """Cancelled from the Temporal side (`temporal workflow cancel`, the Web UI): a
        pending approval was withdrawn by the desk; ops are told what was done (if the
        flow had begun to change the order); it ends ``abandoned`` (the order's
        cancellation was given up, maybe half done) and the caller re-raises, so the run
        ends CANCELLED."""
        stopped_in = self._state
        self._kernel.decision(workflow.now(), "workflow_cancelled", {"stopped_in": stopped_in})
        self._facts.cancelled_in = stopped_in
        await self._saga.compensate(self._kernel)
        self._facts.compensated = self._saga.done
        # Not "cancelled": that is this flow's success (the order was cancelled).
        await self._end("abandoned")

    async def _ended(self, state: CancellationState) -> OrderCancellationResult:
        await self._end(state)
        return self._result(state)

    # -- platform hooks ---------------------------------------------------------------

    @property
    def _stopped_fulfilment(self) -> bool:
        return bool(self._answer and self._answer.stopped)

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    async def _project(self, state: str, previous: str, *, rides: bool = False) -> None:
        """Write ``order_state`` once this flow owns the order, from the version the row
        is at (OrderFulfill wrote it first); a conflicting writer makes it re-read and
        try again."""
        if not self._owns_projection or state == previous:
            return
        if self._rows is None:
            self._rows = OrderProjection(
                self._tenant, self._order_id, read_first=True, attempts=PROJECTION_ATTEMPTS
            )
        await self._rows.write(
            state,
            {
                "cancellation_workflow_id": workflow.info().workflow_id,
                "cancellation": self._facts.shown(),
            },
        )

    def _result(self, state: CancellationState) -> OrderCancellationResult:
        f = self._facts
        history = self._approvals.history
        return OrderCancellationResult(
            workflow_id=workflow.info().workflow_id,
            state=state,
            order_id=self._order_id,
            fulfillment_stopped=self._stopped_fulfilment,
            printful_order_id=f.printful_order_id,
            printful_status=f.printful_status,
            payment_intent_id=f.payment_intent_id,
            payment_action=f.payment_action or "none",
            amount_minor=f.amount_minor or 0,
            currency=f.currency,
            stripe_refund_id=f.stripe_refund_id,
            shopify_cancelled=bool(f.shopify_cancelled),
            email_message_id=f.email_message_id,
            exception=f.report,
            exception_workflow_id=f.exception_workflow_id,
            exception_outcome=f.exception_state if f.exception_workflow_id else None,
            approval=history[-1] if history else None,
            cost_micros=self._kernel.cost_micros,
            reason=f.why,
        )


def _money_step(
    input: OrderCancellationInput, order: GetOrderOutput, intent: GetPaymentIntentOutput | None
) -> _Money:
    """What giving the money back takes, from where the payment stands."""
    none = _Money("none", 0, order.currency)
    if intent is None:
        if order.financial_status.upper() in SHOPIFY_UNPAID:
            return none
        raise _Escalate(
            "payment_unlocated",
            f"the order is {order.financial_status} but no Stripe PaymentIntent is known "
            "for it; pass one to refund or void",
        )
    if intent.order_key is not None and intent.order_key != f"{input.tenant_id}:{input.order_id}":
        raise _Reject(f"PaymentIntent {intent.id} belongs to another order")
    if intent.status == "canceled":
        return none
    if intent.status in PI_VOIDABLE:
        return _void(input, intent)
    if intent.status == "succeeded":
        return _refund(input, intent) if intent.amount_received_minor != 0 else none
    raise _Escalate(
        "payment_unsettled",
        f"PaymentIntent {intent.id} is {intent.status}: it can be neither voided nor refunded yet",
    )


def _void(input: OrderCancellationInput, intent: GetPaymentIntentOutput) -> _Money:
    """An authorisation is voided (its capturable amount); a payment never made, too."""
    amount = intent.amount_capturable_minor if intent.status == "requires_capture" else 0
    fraud = input.reason == "FRAUD"
    reason: Literal["fraudulent", "requested_by_customer", "abandoned"] = (
        "fraudulent" if fraud else "requested_by_customer" if amount else "abandoned"
    )
    void = CancelPaymentInput(
        payment_intent_id=intent.id,
        order_id=input.order_id,
        amount_minor=amount,
        currency=intent.currency,
        reason=reason,
    )
    return _Money(
        "void", amount, intent.currency, tools.stripe.CANCEL_PAYMENT, void, "void_payment"
    )


def _refund(input: OrderCancellationInput, intent: GetPaymentIntentOutput) -> _Money:
    """A captured payment is refunded in full (one refund per order: its request id)."""
    amount = intent.amount_received_minor
    refund = CreateRefundInput(
        payment_intent_id=intent.id,
        order_id=input.order_id,
        refund_request_id=f"cancel-{input.order_id}"[:64],
        amount_minor=amount,
        currency=intent.currency,
        reason="fraudulent" if input.reason == "FRAUD" else "requested_by_customer",
    )
    return _Money(
        "refund", amount, intent.currency, tools.stripe.CREATE_REFUND, refund, "refund_payment"
    )
