"""WF04 OrderCancellation: take an order back before it is made, and give the money back.

shopify.get_order → survey (printful.get_order by ``@{external_id}``,
stripe.get_payment_intent) → [approval for the money step when the HITL rule asks] →
stop a running OrderFulfill (``cancel_requested``; it answers ``fulfill_stopped``) and
survey again → printful.cancel_order → stripe.cancel_payment (an uncaptured
authorisation is voided) or stripe.create_refund (a captured one is refunded) →
shopify.cancel_order → the customer's email.

Exception branch: a Printful order already in production (or shipped) cannot be
cancelled, so nothing is cancelled, no money moves, ops are emailed, and the result says
why (``CancellationException``, shaped as the input of the FulfillmentException flow once
it exists: ``_escalate`` is where that flow will be started). The same branch takes a paid
order whose PaymentIntent cannot be found and a payment still ``processing``.

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

The ``order_state`` projection is written only once this flow owns the order (after the
stop); before that the running OrderFulfill owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from kernel import tools
    from kernel.call import (
        kernel_call,
        persist_trace,
        preview,
        refusal,
        start_run,
    )
    from kernel.codes import ErrorCode
    from kernel.contracts import ToolContract
    from kernel.state import RunState
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
    from workflows.common.approvals import (
        ApprovalDenied,
        ApprovalDesk,
        Notifier,
        call_with_approval,
    )
    from workflows.common.flow import (
        Saga,
        approval_notifier,
        load_context,
        mark_started,
        move,
        send_email,
    )
    from workflows.common.handlers import ApprovalHandlers
    from workflows.common.models import FlowContext
    from workflows.common.projection import OrderProjection
    from workflows.ids import (
        CANCEL_REQUESTED,
        FULFILL_STOPPED,
        ORDER_CANCELLATION,
        SHOPIFY_EVENT,
        order_workflow_id,
        printful_external_id,
    )
    from workflows.orders.models import (
        CancellationException,
        CancelRequest,
        FulfillStopped,
        OrderCancellationInput,
        OrderCancellationResult,
    )

WORKFLOW_TYPE = ORDER_CANCELLATION.key
DB_TIMEOUT = timedelta(seconds=30)
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

ExceptionKind = Literal["printful_in_production", "payment_unlocated", "payment_unsettled"]


class _Escalate(Exception):
    """The order goes to people (the exception branch); caught in ``run``."""

    def __init__(self, kind: ExceptionKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: ExceptionKind = kind
        self.detail = detail


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

    action: Literal["void", "refund", "none"]
    amount_minor: int
    currency: str
    tool: ToolContract[Any, Any] | None = None
    input: BaseModel | None = None
    step: str = ""

    @property
    def approval_action(self) -> str:
        return f"{self.action}_payment"


@workflow.defn(name=ORDER_CANCELLATION.type)
class OrderCancellation(ApprovalHandlers):
    def __init__(self) -> None:
        super().__init__()
        self._order_id = ""
        self._answer: FulfillStopped | None = None
        self._owns_projection = False
        self._rows: OrderProjection | None = None  # keeps what OrderFulfill wrote
        self._done: list[str] = []  # irreversible steps taken, for ops

    # -- handlers ---------------------------------------------------------------------

    @workflow.signal(name=FULFILL_STOPPED)
    def fulfill_stopped(self, answer: FulfillStopped) -> None:
        """OrderFulfill's answer to ``cancel_requested``; only this order's flow counts."""
        if answer.workflow_id == order_workflow_id(self._tenant, self._order_id):
            self._answer = answer

    @workflow.signal(name=SHOPIFY_EVENT)
    def shopify_event(self, envelope: dict[str, Any]) -> None:
        """The ingress's ``orders/cancelled`` (the start signal, or a repeat): the run
        already does what it asks, so it is only noted."""
        self._detail.setdefault("shopify_events", []).append(str(envelope.get("topic")))

    # -- the run ----------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderCancellationInput) -> OrderCancellationResult:
        self._tenant, self._order_id = input.tenant_id, input.order_id
        mark_started(input.tenant_id, input.order_id, self._state)
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        desk = self._desk = ApprovalDesk(input.tenant_id)
        desk.configure(context)
        saga = Saga()
        self._detail["reason"] = input.reason
        try:
            await self._flow(input, context, run, desk, saga)
        except _Escalate as esc:
            saga.clear()  # the exception report tells ops everything the alert would
            return await self._escalate(run, context, esc)
        except _Reject as rej:
            self._error = str(rej)
            await saga.compensate(run)
            return await self._finish(run, "rejected", reason=self._error)
        except ApprovalDenied as denied:
            view = denied.view
            self._error = f"approval {view.request_id} {view.status}"
            await saga.compensate(run)
            if view.status == "denied":
                return await self._finish(run, "rejected", reason=view.reason or self._error)
            await self._finish(run, "expired", reason=self._error)
            raise ApplicationError(
                f"approval {view.request_id} expired: nothing was cancelled or paid back "
                "(fail closed)",
                type=ErrorCode.APPROVAL_EXPIRED,
                non_retryable=True,
            ) from None
        except (ActivityError, ApplicationError) as exc:
            self._error = _describe(exc)
            await saga.compensate(run)
            self._detail["compensated"] = saga.done
            await self._move("failed")
            await persist_trace(run)
            raise
        return await self._finish(run, "cancelled")

    async def _finish(
        self,
        run: RunState,
        state: Literal["cancelled", "exception", "rejected", "expired"],
        **extra: Any,
    ) -> OrderCancellationResult:
        await self._move(state)
        await persist_trace(run)
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._desk is not None
        d = self._detail
        return OrderCancellationResult(
            workflow_id=workflow.info().workflow_id,
            state=state,
            order_id=self._order_id,
            fulfillment_stopped=bool(self._answer and self._answer.stopped),
            printful_order_id=d.get("printful_order_id"),
            printful_status=d.get("printful_status"),
            payment_intent_id=d.get("payment_intent_id"),
            payment_action=d.get("payment_action", "none"),
            amount_minor=d.get("amount_minor", 0),
            currency=d.get("currency"),
            stripe_refund_id=d.get("stripe_refund_id"),
            shopify_cancelled=bool(d.get("shopify_cancelled")),
            email_message_id=d.get("email_message_id"),
            approval=self._desk.history[-1] if self._desk.history else None,
            cost_micros=run.cost_micros,
            **extra,
        )

    async def _flow(
        self,
        input: OrderCancellationInput,
        context: FlowContext,
        run: RunState,
        desk: ApprovalDesk,
        saga: Saga,
    ) -> None:
        notify = approval_notifier(run)
        order = await kernel_call(
            run,
            tools.shopify.GET_ORDER,
            GetOrderInput(order_id=input.order_id),
            step="get_order",
        )
        self._detail.update(
            order_name=order.order_name, total_minor=order.total_minor, currency=order.currency
        )
        pi_id = input.payment_intent_id or order.payment_intent_id
        if pi_id is not None:
            self._detail["payment_intent_id"] = pi_id

        # Decide everything before changing anything.
        await self._move("surveying")
        survey = await self._survey(run, input, pi_id, 1)
        money = self._plan(input, order, survey)
        await self._approve(run, desk, context, money, notify)

        # From here on this flow changes things, and none of it can be undone.
        await self._move("stopping_fulfillment")
        delivered = await self._stop_fulfillment(run, input)
        self._owns_projection = True

        async def alert_ops() -> None:
            await self._alert_ops(
                run,
                context,
                "cancellation_incomplete",
                f"the cancellation stopped after: {', '.join(self._done) or 'nothing'}; "
                f"failed with: {self._error or 'a refusal'}",
            )

        saga.add("alert_ops", alert_ops)
        if delivered:
            # OrderFulfill was running and may have captured or confirmed meanwhile.
            survey = await self._survey(run, input, pi_id, 2)
            money = self._plan(input, order, survey)
            await self._approve(run, desk, context, money, notify)

        if survey.printful_order_id is not None and survey.printful_status != PRINTFUL_CANCELED:
            await self._move("cancelling_fulfillment")
            await self._cancel_printful(run, survey.printful_order_id)

        if money.action != "none":
            assert money.input is not None and money.tool is not None
            await self._move("voiding" if money.action == "void" else "refunding")
            moved = await call_with_approval(
                desk,
                run,
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
                self._detail["stripe_refund_id"] = moved.refund_id
            elif isinstance(moved, CancelPaymentOutput):
                self._detail["payment_status"] = moved.status
            self._done.append("payment voided" if money.action == "void" else "payment refunded")

        await self._move("cancelling_order")
        await kernel_call(
            run,
            tools.shopify.CANCEL_ORDER,
            # Our own email tells the customer (with the money part), not Shopify's.
            CancelOrderInput(order_id=input.order_id, reason=input.reason, notify_customer=False),
            step="shopify_cancel",
        )
        self._detail["shopify_cancelled"] = True
        self._done.append("Shopify order cancelled")

        if context.customer_emails and order.customer_email:
            await self._move("notifying")
            sent = await send_email(
                run,
                to=order.customer_email,
                template="order_cancelled",
                subject=f"Your order {order.order_name} is cancelled",
                step="email_cancelled",
                variables={
                    "order_name": order.order_name,
                    "payment_action": money.action,
                    "amount_minor": str(money.amount_minor),
                    "currency": money.currency,
                },
            )
            self._detail["email_message_id"] = sent.message_id
        saga.clear()

    # -- the steps --------------------------------------------------------------------

    async def _survey(
        self, run: RunState, input: OrderCancellationInput, pi_id: str | None, n: int
    ) -> _Survey:
        """Where the order stands at Printful and at Stripe (reads only)."""
        ref = PrintfulOrderRef(external_id=printful_external_id(input.tenant_id, input.order_id))
        pf_id: int | None = None
        pf_status: str | None = None
        try:
            found = await kernel_call(
                run,
                tools.printful.GET_ORDER,
                ref,
                step=f"printful_lookup:{n}",
            )
            pf_id, pf_status = found.printful_order_id, found.status
        except ActivityError as exc:
            if _error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
                raise
        self._detail.update(printful_order_id=pf_id, printful_status=pf_status)
        intent: GetPaymentIntentOutput | None = None
        if pi_id is not None:
            intent = await kernel_call(
                run,
                tools.stripe.GET_PAYMENT_INTENT,
                GetPaymentIntentInput(payment_intent_id=pi_id, order_id=input.order_id),
                step=f"payment_lookup:{n}",
            )
            self._detail["payment_status"] = intent.status
        return _Survey(pf_id, pf_status, intent)

    def _plan(self, input: OrderCancellationInput, order: GetOrderOutput, s: _Survey) -> _Money:
        """Route to the exception branch, or say what the money step is."""
        if s.printful_status is not None and s.printful_status not in (
            PRINTFUL_CANCELLABLE | {PRINTFUL_CANCELED}
        ):
            raise _Escalate(
                "printful_in_production",
                f"Printful order {s.printful_order_id} is {s.printful_status}: an order in "
                "production cannot be cancelled",
            )
        intent = s.intent
        none = _Money("none", 0, order.currency)
        if intent is None:
            if order.financial_status.upper() in SHOPIFY_UNPAID:
                return self._planned(none)
            raise _Escalate(
                "payment_unlocated",
                f"the order is {order.financial_status} but no Stripe PaymentIntent is known "
                "for it; pass one to refund or void",
            )
        key = f"{input.tenant_id}:{input.order_id}"
        if intent.order_key is not None and intent.order_key != key:
            raise _Reject(f"PaymentIntent {intent.id} belongs to another order")
        fraud = input.reason == "FRAUD"
        if intent.status == "canceled":
            return self._planned(none)
        if intent.status in PI_VOIDABLE:
            amount = intent.amount_capturable_minor if intent.status == "requires_capture" else 0
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
            return self._planned(
                _Money(
                    "void",
                    amount,
                    intent.currency,
                    tools.stripe.CANCEL_PAYMENT,
                    void,
                    "void_payment",
                )
            )
        if intent.status == "succeeded":
            if intent.amount_received_minor == 0:
                return self._planned(none)
            amount = intent.amount_received_minor
            refund = CreateRefundInput(
                payment_intent_id=intent.id,
                order_id=input.order_id,
                refund_request_id=f"cancel-{input.order_id}"[:64],
                amount_minor=amount,
                currency=intent.currency,
                reason="fraudulent" if fraud else "requested_by_customer",
            )
            return self._planned(
                _Money(
                    "refund",
                    amount,
                    intent.currency,
                    tools.stripe.CREATE_REFUND,
                    refund,
                    "refund_payment",
                )
            )
        raise _Escalate(
            "payment_unsettled",
            f"PaymentIntent {intent.id} is {intent.status}: it can be neither voided nor "
            "refunded yet",
        )

    def _planned(self, money: _Money) -> _Money:
        self._detail.update(
            payment_action=money.action, amount_minor=money.amount_minor, currency=money.currency
        )
        return money

    async def _approve(
        self,
        run: RunState,
        desk: ApprovalDesk,
        context: FlowContext,
        money: _Money,
        notify: Notifier,
    ) -> None:
        """Get the money step's approval now, before anything changes (the call itself
        later reuses it, bound to its own key). A gate refusal other than "needs
        approval" fails here too, while nothing has been done."""
        if money.action == "none":
            return
        assert money.input is not None and money.tool is not None
        decision = preview(run, money.tool, money.input, step=money.step)
        if decision.allowed:
            return
        if decision.code is not ErrorCode.APPROVAL_REQUIRED:
            raise refusal(decision)
        current = desk.current
        if (
            current is not None
            and current.status == "approved"
            and current.action == money.approval_action
            and current.amount_minor == money.amount_minor
        ):
            return
        assert decision.hitl is not None
        rule = decision.hitl.rule
        await self._move("awaiting_approval")
        view = await desk.obtain(
            action=money.approval_action,
            roles=decision.hitl.approver_roles,
            expires_in=context.timing.timeout or (rule.timeout if rule else timedelta(hours=24)),
            amount_minor=money.amount_minor,
            currency=money.currency,
            notify=notify,
            details={"tool": money.tool.ref, "step": money.step, "order_id": self._order_id},
        )
        if view.status != "approved":
            run.decision(
                workflow.now(),
                f"approval_{view.status}",
                {
                    "request_id": view.request_id,
                    "tool": money.tool.ref,
                    "decided_by": view.decided_by,
                },
            )
            raise ApprovalDenied(view)

    async def _stop_fulfillment(self, run: RunState, input: OrderCancellationInput) -> bool:
        """Tell a running OrderFulfill to stop and wait (bounded) for its answer. False:
        no OrderFulfill was running (never started, or closed) — nothing to wait for."""
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
        self._detail.update(fulfillment_stopped=answer.stopped, fulfillment_state=answer.state)
        run.decision(
            workflow.now(),
            "fulfillment_stopped" if answer.stopped else "fulfillment_finished",
            {"workflow_id": target, "state": answer.state},
        )
        if answer.stopped:
            self._done.append(f"fulfilment stopped (in {answer.state})")
        return True

    async def _cancel_printful(self, run: RunState, printful_order_id: int) -> None:
        try:
            out = await kernel_call(
                run,
                tools.printful.CANCEL_ORDER,
                PrintfulOrderRef(printful_order_id=printful_order_id),
                step="printful_cancel",
            )
        except ActivityError as exc:
            if _error_type(exc) == ErrorCode.PROVIDER_STATE_CONFLICT:
                # It went into production between the read and the cancel.
                raise _Escalate(
                    "printful_in_production",
                    f"Printful refused to cancel order {printful_order_id}: {_describe(exc)}",
                ) from None
            raise
        self._detail["printful_status"] = out.status
        self._done.append(f"Printful order {printful_order_id} cancelled")

    async def _escalate(
        self, run: RunState, context: FlowContext, esc: _Escalate
    ) -> OrderCancellationResult:
        """The exception branch: nothing more is cancelled, no money moves, ops are told.
        When the FulfillmentException workflow (WF06) exists it is started here, as a
        child, with ``report`` as its input."""
        report = CancellationException(
            tenant_id=self._tenant,
            order_id=self._order_id,
            kind=esc.kind,
            detail=esc.detail,
            printful_order_id=self._detail.get("printful_order_id"),
            printful_status=self._detail.get("printful_status"),
            payment_intent_id=self._detail.get("payment_intent_id"),
            fulfillment_stopped=bool(self._answer and self._answer.stopped),
        )
        run.decision(workflow.now(), "exception", {"kind": esc.kind, "done": list(self._done)})
        self._detail["exception"] = esc.kind
        await self._move("exception")
        detail = esc.detail
        if self._done:
            detail += f" (already done: {', '.join(self._done)})"
        await self._alert_ops(run, context, esc.kind, detail)
        return await self._finish(run, "exception", exception=report, reason=esc.detail)

    async def _alert_ops(self, run: RunState, context: FlowContext, kind: str, detail: str) -> None:
        """Email ops (best effort: a mail that cannot go out must not hide the outcome)."""
        if not context.ops_email:
            run.decision(workflow.now(), "ops_not_notified", {"kind": kind})
            return
        try:
            sent = await send_email(
                run,
                to=context.ops_email,
                template="ops_alert",
                category="ops",
                subject=f"Order {self._detail.get('order_name', self._order_id)}: "
                f"{kind.replace('_', ' ')}",
                step=f"ops:{kind}",
                variables={
                    "kind": kind,
                    "order_id": self._order_id,
                    "detail": detail[:1000],
                    "workflow_id": workflow.info().workflow_id,
                },
            )
            self._detail["ops_message_id"] = sent.message_id
        except (ActivityError, ApplicationError) as exc:
            workflow.logger.warning("ops alert %s not sent: %s", kind, exc)
            run.decision(workflow.now(), "ops_not_notified", {"kind": kind})

    # -- state and projection ---------------------------------------------------------

    async def _move(self, new: str) -> None:
        assert self._run is not None
        if new == self._state:
            return
        self._state = move(self._run, self._state, new)
        if self._owns_projection:
            await self._project(new)

    async def _project(self, new: str) -> None:
        """Write ``order_state`` from the version the row is at (OrderFulfill wrote it
        first); a conflicting writer makes it re-read and try again."""
        if self._rows is None:
            self._rows = OrderProjection(
                self._tenant, self._order_id, read_first=True, attempts=PROJECTION_ATTEMPTS
            )
        await self._rows.write(
            new,
            {
                "cancellation_workflow_id": workflow.info().workflow_id,
                "cancellation": _plain(self._detail),
            },
        )


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if isinstance(v, str | int | bool | list) or v is None}


def _error_type(exc: ActivityError) -> str | None:
    cause = exc.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _describe(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    kind = getattr(cause, "type", None) or type(cause).__name__
    return f"{kind}: {cause}"
