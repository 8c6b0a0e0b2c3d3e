"""WF03 Refund: validate → approval when the HITL rule says so → Stripe refund
(idempotent) → Shopify ``refundCreate`` (@idempotent) → customer email.

An approval that times out fails closed (INV-07): no money moves, approvers and ops are
told, and the workflow fails with ``APPROVAL_EXPIRED``. A denial completes the workflow
with state ``denied``. A request above the order's total, or in another currency, is
``rejected`` before anything is asked of anyone.

The money invariants are enforced twice (``kernel.refunds``): the starter refuses on our
ledger before anything starts, and ``stripe.create_refund`` re-checks Stripe's truth
right before the money moves (the PaymentIntent is this order's, in this currency, with
enough captured and not yet refunded). Its refusal (a stable code) ends the run
``rejected`` with the code in ``reason`` and a ``refund_refused`` trace decision: no
Stripe refund, no Shopify refund, no email.

Cancelled from the Temporal side (`temporal workflow cancel`, the Web UI), the run ends
``cancelled`` with a ``workflow_cancelled`` trace decision; a request waiting for
approval is withdrawn and its row closed. Nothing is undone: money sent back stays sent
(the decision names the Stripe refund when one was made).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import InT, OutT, kernel_call
    from kernel.codes import ErrorCode
    from kernel.contracts import ToolContract
    from kernel.money import format_money
    from kernel.refunds import REFUSAL_CODES
    from kernel.tools.shopify import GetOrderInput, GetOrderOutput, ShopifyRefundInput
    from kernel.tools.stripe import CreateRefundInput
    from workflows.common.approvals import ApprovalDenied, call_with_approval
    from workflows.common.flow import approval_notifier, send_email
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import FlowContext
    from workflows.ids import REFUND
    from workflows.payments.models import RefundInput, RefundResult

# Histories recorded before a refused Stripe refund ended the run ``rejected`` (it
# failed the workflow then).
REFUSED_PATCH = "refund-refused-rejects"


@dataclass
class Refunding:
    """What the run was asked and has done: the result and the ``status`` query's detail
    are read from here."""

    amount_minor: int
    currency: str
    stripe_refund_id: str | None = None
    shopify_refund_id: str | None = None
    reason: str | None = None  # why no refund: rejected, refused or denied

    def shown(self) -> dict[str, Any]:
        """The detail operators see (refund ids once made)."""
        detail: dict[str, Any] = {"amount_minor": self.amount_minor, "currency": self.currency}
        for name in ("stripe_refund_id", "shopify_refund_id"):
            if (value := getattr(self, name)) is not None:
                detail[name] = value
        return detail


@workflow.defn(name=REFUND.type)
class Refund(ApprovalFlow):
    @workflow.init
    def __init__(self, input: RefundInput) -> None:
        super().__init__()
        self._facts = Refunding(amount_minor=input.amount_minor, currency=input.currency)

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RefundInput) -> RefundResult:
        context = await self._begin(REFUND, input, order_id=input.order_id)
        try:
            refunded = await self._refund(input, context)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            await self._failed(exc)
        if refunded:
            await self._end("refunded")
        return self._result()

    async def _refund(self, input: RefundInput, context: FlowContext) -> bool:
        """True: the money went back and was recorded. False: the run has ended
        otherwise (rejected, refused, denied)."""
        order = await self._read_order(input.order_id)
        problem = _validate(input, order)
        if problem is not None:
            await self._rejected(problem, "refund_rejected", {"reason": problem})
            return False
        await self._move("validated")
        await self._move("refunding")
        approval_wait = context.timing.timeout
        try:
            await self._refund_in_stripe(input, approval_wait)
        except ApprovalDenied as denied:
            await self._not_approved(denied)
            return False
        except ActivityError as exc:
            refused = _refusal(exc)
            if refused is None or not workflow.patched(REFUSED_PATCH):
                raise
            await self._refused(*refused)
            return False
        await self._record_in_shopify(input, approval_wait)
        if context.customer_emails and order.customer_email:
            await self._tell_customer(order, input)
        return True

    # -- the steps --------------------------------------------------------------------

    async def _read_order(self, order_id: str) -> GetOrderOutput:
        return await kernel_call(
            self._kernel,
            tools.shopify.GET_ORDER,
            GetOrderInput(order_id=order_id),
            step="get_order",
        )

    async def _refund_in_stripe(self, input: RefundInput, approval_wait: timedelta | None) -> None:
        """The money back (finance approves first when the HITL rule says so)."""
        refund = await self._with_approval(
            tools.stripe.CREATE_REFUND,
            CreateRefundInput(
                payment_intent_id=input.payment_intent_id,
                order_id=input.order_id,
                refund_request_id=input.refund_request_id,
                amount_minor=input.amount_minor,
                currency=input.currency,
                reason=input.reason,
            ),
            step="stripe_refund",
            approval_wait=approval_wait,
        )
        self._facts.stripe_refund_id = refund.refund_id

    async def _record_in_shopify(self, input: RefundInput, approval_wait: timedelta | None) -> None:
        """The same refund on the Shopify order. The human decision on the Stripe refund
        covers it, bound to this call's own key (never a blanket approval)."""
        recorded = await self._with_approval(
            tools.shopify.REFUND_CREATE,
            ShopifyRefundInput(
                order_id=input.order_id,
                refund_request_id=input.refund_request_id,
                amount_minor=input.amount_minor,
                currency=input.currency,
                note=input.note,
            ),
            step="shopify_refund",
            approval_wait=approval_wait,
        )
        self._facts.shopify_refund_id = recorded.refund_id

    async def _tell_customer(self, order: GetOrderOutput, input: RefundInput) -> None:
        assert order.customer_email is not None
        await send_email(
            self._kernel,
            to=order.customer_email,
            template="refund_issued",
            subject=f"Your refund for {order.order_name}",
            step="email_refund",
            variables={
                "order_name": order.order_name,
                "amount_minor": str(input.amount_minor),
                "currency": input.currency,
            },
        )

    async def _with_approval(
        self,
        tool: ToolContract[InT, OutT],
        call: InT,
        *,
        step: str,
        approval_wait: timedelta | None,
    ) -> OutT:
        """A refund call through the gate (action ``refund``, this run's amount)."""
        return await call_with_approval(
            self._approvals,
            self._kernel,
            tool,
            call,
            step=step,
            action="refund",
            amount_minor=self._facts.amount_minor,
            currency=self._facts.currency,
            notify=approval_notifier(self._kernel),
            timeout_override=approval_wait,
        )

    # -- how the run ends otherwise ---------------------------------------------------

    async def _rejected(self, reason: str, decision: str, data: dict[str, str]) -> None:
        """Ended ``rejected`` before any money moved, ``reason`` in the result and status."""
        await self._move("rejected")
        self._error = self._facts.reason = reason
        self._kernel.decision(workflow.now(), decision, data)
        await self._end("rejected")

    async def _refused(self, code: str, message: str) -> None:
        """``stripe.create_refund`` refused it on Stripe's truth (a money invariant)."""
        tool = tools.stripe.CREATE_REFUND.ref
        data = {"code": code, "reason": message, "tool": tool}
        await self._rejected(f"{code}: {message}", "refund_refused", data)

    async def _not_approved(self, denied: ApprovalDenied) -> None:
        """Denied: the run completes ``denied``. Expired: it fails closed (INV-07)."""
        view = denied.view
        await self._end(view.status)
        if view.status != "denied":
            raise ApplicationError(
                f"approval {view.request_id} expired: refund not made (fail closed)",
                type=ErrorCode.APPROVAL_EXPIRED,
                non_retryable=True,
            ) from None
        self._facts.reason = view.reason

    async def _failed(self, exc: ActivityError | ApplicationError) -> NoReturn:
        """End ``failed`` (an expired approval has ended the run already) and raise again;
        cancelled while an activity ran, the run ends ``cancelled`` instead."""
        if is_cancelled_exception(exc):
            await self._cancelled()
        elif self._state != "expired":
            # The message alone, as this flow's status has always shown it.
            self._error = str(exc.cause if isinstance(exc, ActivityError) else exc)
            await self._end("failed")
        raise exc

    async def _cancelled(self) -> None:
        """Cancelled from the Temporal side: nothing to undo (the approval desk has
        withdrawn a pending request); the caller re-raises, so the run ends CANCELLED."""
        data = {"stopped_in": self._state, "stripe_refund_id": self._facts.stripe_refund_id}
        self._kernel.decision(workflow.now(), "workflow_cancelled", data)
        await self._end("cancelled")

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    def _result(self) -> RefundResult:
        f, history = self._facts, self._approvals.history
        state: Any = self._state  # refunded, denied or rejected: the model checks it
        return RefundResult(
            workflow_id=workflow.info().workflow_id,
            state=state,
            stripe_refund_id=f.stripe_refund_id,
            shopify_refund_id=f.shopify_refund_id,
            amount_minor=f.amount_minor,
            currency=f.currency,
            approval=history[-1] if history else None,
            cost_micros=self._kernel.cost_micros,
            reason=f.reason,
        )


def _validate(input: RefundInput, order: GetOrderOutput) -> str | None:
    """Against the Shopify order (what was captured is checked on Stripe later)."""
    if input.currency != order.currency:
        return (
            f"{ErrorCode.CURRENCY_MISMATCH}: currency {input.currency} differs from the order's "
            f"{order.currency}"
        )
    if input.amount_minor > order.total_minor:
        return (
            f"{ErrorCode.REFUND_EXCEEDS_REFUNDABLE}: "
            f"{format_money(input.amount_minor, input.currency)} "
            f"exceeds the order's total {format_money(order.total_minor, order.currency)}"
        )
    return None


def _refusal(exc: ActivityError) -> tuple[str, str] | None:
    """``(code, message)`` when the Stripe refund was refused by a money invariant."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type in REFUSAL_CODES:
        return cause.type, cause.message
    return None
