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
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import kernel_call, persist_trace, start_run
    from kernel.codes import ErrorCode
    from kernel.money import format_money
    from kernel.refunds import REFUSAL_CODES
    from kernel.tools.shopify import GetOrderInput, GetOrderOutput, ShopifyRefundInput
    from kernel.tools.stripe import CreateRefundInput
    from workflows.common.approvals import ApprovalDenied, ApprovalDesk, call_with_approval
    from workflows.common.flow import (
        approval_notifier,
        load_context,
        mark_started,
        move,
        send_email,
    )
    from workflows.common.handlers import ApprovalHandlers
    from workflows.ids import REFUND
    from workflows.payments.models import RefundInput, RefundResult

WORKFLOW_TYPE = REFUND.key
# Histories recorded before a refused Stripe refund ended the run ``rejected`` (it
# failed the workflow then).
REFUSED_PATCH = "refund-refused-rejects"


@workflow.defn(name=REFUND.type)
class Refund(ApprovalHandlers):
    def _move(self, new: str) -> None:
        assert self._run is not None
        self._state = move(self._run, self._state, new)

    @workflow.run
    async def run(self, input: RefundInput) -> RefundResult:
        self._tenant = input.tenant_id
        mark_started(input.tenant_id, input.order_id, self._state)
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        desk = self._desk = ApprovalDesk(input.tenant_id)
        desk.configure(context)
        timeout: timedelta | None = context.timing.timeout
        wf_id = workflow.info().workflow_id
        self._detail.update(amount_minor=input.amount_minor, currency=input.currency)

        def result(state: Any, **extra: Any) -> RefundResult:
            return RefundResult(
                workflow_id=wf_id,
                state=state,
                amount_minor=input.amount_minor,
                currency=input.currency,
                approval=desk.history[-1] if desk.history else None,
                cost_micros=run.cost_micros,
                **extra,
            )

        try:
            order = await kernel_call(
                run,
                tools.shopify.GET_ORDER,
                GetOrderInput(order_id=input.order_id),
                step="get_order",
            )
            problem = _validate(input, order)
            if problem is not None:
                self._move("rejected")
                self._error = problem
                run.decision(workflow.now(), "refund_rejected", {"reason": problem})
                await persist_trace(run)
                return result("rejected", reason=problem)

            self._move("validated")
            notify = approval_notifier(run)
            stripe_in = CreateRefundInput(
                payment_intent_id=input.payment_intent_id,
                order_id=input.order_id,
                refund_request_id=input.refund_request_id,
                amount_minor=input.amount_minor,
                currency=input.currency,
                reason=input.reason,
            )
            self._move("refunding")
            try:
                stripe_refund = await call_with_approval(
                    desk,
                    run,
                    tools.stripe.CREATE_REFUND,
                    stripe_in,
                    step="stripe_refund",
                    action="refund",
                    amount_minor=input.amount_minor,
                    currency=input.currency,
                    notify=notify,
                    timeout_override=timeout,
                )
            except ApprovalDenied as denied:
                self._move(denied.view.status)
                await persist_trace(run)
                await workflow.wait_condition(workflow.all_handlers_finished)
                if denied.view.status == "denied":
                    return result("denied", reason=denied.view.reason)
                raise ApplicationError(
                    f"approval {denied.view.request_id} expired: refund not made (fail closed)",
                    type=ErrorCode.APPROVAL_EXPIRED,
                    non_retryable=True,
                ) from None
            except ActivityError as exc:
                refused = _refusal(exc)
                if refused is None or not workflow.patched(REFUSED_PATCH):
                    raise
                code, message = refused
                self._move("rejected")
                self._error = f"{code}: {message}"
                run.decision(
                    workflow.now(),
                    "refund_refused",
                    {"code": code, "reason": message, "tool": "stripe.create_refund@1"},
                )
                await persist_trace(run)
                await workflow.wait_condition(workflow.all_handlers_finished)
                return result("rejected", reason=f"{code}: {message}")
            self._detail["stripe_refund_id"] = stripe_refund.refund_id
            # The human decision covers the Shopify record of the same refund; it is
            # bound to that call's own key (never a blanket approval).
            shopify_refund = await call_with_approval(
                desk,
                run,
                tools.shopify.REFUND_CREATE,
                ShopifyRefundInput(
                    order_id=input.order_id,
                    refund_request_id=input.refund_request_id,
                    amount_minor=input.amount_minor,
                    currency=input.currency,
                    note=input.note,
                ),
                step="shopify_refund",
                action="refund",
                amount_minor=input.amount_minor,
                currency=input.currency,
                notify=notify,
                timeout_override=timeout,
            )
            self._detail["shopify_refund_id"] = shopify_refund.refund_id
            if context.customer_emails and order.customer_email:
                await send_email(
                    run,
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
        except (ActivityError, ApplicationError) as exc:
            if self._state not in ("expired",):
                self._error = str(exc.cause if isinstance(exc, ActivityError) else exc)
                self._move("failed")
                await persist_trace(run)
            raise
        self._move("refunded")
        await persist_trace(run)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result(
            "refunded",
            stripe_refund_id=stripe_refund.refund_id,
            shopify_refund_id=shopify_refund.refund_id,
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
