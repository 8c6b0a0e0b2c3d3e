"""WF02 PaymentFailure: a declined payment, collected by dunning or cancelled.

stripe.get_payment_intent → classify the decline (table below) →

- **soft**: shopify.get_order → notice email ("pay again") → for each wait of the dunning
  schedule: wait for the customer to pay, then re-read the PaymentIntent; a reminder
  after every wait but the last. A ``stripe_event`` signal (``payment_intent.succeeded``
  / ``amount_capturable_updated``, as the ingress sends them) wakes the wait early, but
  only the re-read PaymentIntent decides: a signal is never trusted on its own.
- paid at any check (``succeeded`` or ``requires_capture``): state ``recovered``, the
  customer is thanked, nothing is cancelled.
- **hard**, or the schedule exhausted: void the PaymentIntent (stripe.cancel_payment,
  approval first when the tenant's HITL rule says so; the PaymentIntent is re-read after
  the approval, so a customer who paid while the approver thought is not voided) →
  shopify.cancel_order (reason DECLINED) → customer email. A denied void ends the flow
  as ``denied`` with nothing voided or cancelled; an expired one fails closed
  (``APPROVAL_EXPIRED``), likewise with nothing voided or cancelled.

Decline classes (Stripe ``last_payment_error.decline_code``, else its ``code``):

========  ================================================================================
hard      stolen_card, lost_card, fraudulent, pickup_card, restricted_card,
          merchant_blacklist, security_violation, stop_payment_order,
          revocation_of_authorization, revocation_of_all_authorizations — the card is
          compromised or blocked by its issuer; asking its holder to pay again is
          pointless or wrong, so there is no dunning.
soft      insufficient_funds, generic_decline / card_declined, processing_error,
          try_again_later, issuer_not_available, reenter_transaction, do_not_honor,
          card_velocity_exceeded, withdrawal_count_limit_exceeded, expired_card,
          incorrect_cvc, incorrect_number, authentication_required, approve_with_id,
          call_issuer, … and any code not listed — the customer can pay later or with
          another card.
========  ================================================================================

This is not ``autobiz.providers.errors.HARD_DECLINE_CODES``: that table answers "can the
*same card* succeed on a retry" (an expired card cannot); this one answers "is it right
to ask the *customer* to pay again" (with an expired card, yes).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import ORDER_ID
    from kernel import tools
    from kernel.call import kernel_call, persist_trace, preview, start_run
    from kernel.codes import ErrorCode
    from kernel.config import DunningConfig
    from kernel.state import RunState
    from kernel.tools.shopify import CancelOrderInput, GetOrderInput, GetOrderOutput
    from kernel.tools.stripe import (
        CancelPaymentInput,
        GetPaymentIntentInput,
        GetPaymentIntentOutput,
    )
    from workflows.common.approvals import ApprovalDenied, ApprovalDesk, call_with_approval
    from workflows.common.flow import (
        approval_notifier,
        load_context,
        mark_started,
        move,
        send_email,
    )
    from workflows.common.handlers import ApprovalHandlers
    from workflows.common.models import FlowContext
    from workflows.common.projection import OrderProjection
    from workflows.ids import PAYMENT_FAILURE, STRIPE_EVENT
    from workflows.payments.models import DeclineClass, PaymentFailureInput, PaymentFailureResult

WORKFLOW_TYPE = PAYMENT_FAILURE.key
DB_TIMEOUT = timedelta(seconds=30)

HARD_DECLINES = frozenset(
    {
        "stolen_card",
        "lost_card",
        "fraudulent",
        "pickup_card",
        "restricted_card",
        "merchant_blacklist",
        "security_violation",
        "stop_payment_order",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
    }
)
SOFT_DECLINES = frozenset(
    {
        "insufficient_funds",
        "generic_decline",
        "card_declined",
        "processing_error",
        "try_again_later",
        "issuer_not_available",
        "reenter_transaction",
        "do_not_honor",
        "card_velocity_exceeded",
        "withdrawal_count_limit_exceeded",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "authentication_required",
        "approve_with_id",
        "call_issuer",
        "no_action_taken",
        "not_permitted",
        "transaction_not_allowed",
        "invalid_account",
        "new_account_information_available",
        "card_not_supported",
        "currency_not_supported",
        "duplicate_transaction",
        "offline_pin_required",
        "online_or_offline_pin_required",
        "pin_try_exceeded",
        "testmode_decline",
    }
)
# The customer paid: an authorisation to capture, or the money itself.
PAID = frozenset({"succeeded", "requires_capture"})
# Topics that say the customer may have paid (they wake the wait; the re-read decides).
SETTLED_TOPICS = frozenset({"payment_intent.succeeded", "payment_intent.amount_capturable_updated"})
# Early re-reads a wait allows on signals before it sleeps to its deadline: keeps a
# stream of signals from becoming a stream of identical calls (the loop detector).
SIGNAL_CHECKS_PER_WAIT = 1


def classify_decline(decline_code: str | None, failure_code: str | None) -> DeclineClass:
    """Hard (no dunning) or soft (dunning); see the module docstring for the table."""
    code = decline_code or failure_code
    return "hard" if code in HARD_DECLINES else "soft"


def order_from_key(order_key: str | None, tenant_id: str) -> str | None:
    """The order id in the PaymentIntent's ``order_key`` (``{tenant}:{id}``,
    ``order:{tenant}:{id}`` or a bare id); another tenant's key is refused."""
    if not order_key:
        return None
    parts = order_key.split(":")
    if len(parts) >= 2 and parts[-2] != tenant_id:
        raise ApplicationError(
            "the PaymentIntent belongs to another tenant's order",
            type=ErrorCode.TENANT_MISMATCH,
            non_retryable=True,
        )
    return parts[-1] or None


@workflow.defn(name=PAYMENT_FAILURE.type)
class PaymentFailure(ApprovalHandlers):
    @workflow.init
    def __init__(self, input: PaymentFailureInput) -> None:
        super().__init__()
        self._pi_id = input.payment_intent or ""
        self._order_id = input.order_id
        self._tenant = input.tenant_id
        self._projection = True
        self._rows: OrderProjection | None = None
        self._detail = {"payment_intent_id": self._pi_id, "reminders_sent": 0}
        self._seen_events: set[str] = set()
        self._events: list[str] = []
        self._paid_hints = 0  # settled-topic signals received
        self._hints_read = 0  # ... of which a PaymentIntent read has answered
        self._dunned = False  # the customer got a dunning email

    # -- handlers ---------------------------------------------------------------------

    @workflow.signal(name=STRIPE_EVENT)
    def stripe_event(self, envelope: dict[str, Any]) -> None:
        """The ingress's ``EventEnvelope`` (as JSON); repeats (same ``dedup_id``) dropped."""
        dedup = str(envelope.get("dedup_id") or envelope.get("provider_event_id") or "")
        if dedup:
            if dedup in self._seen_events:
                return
            self._seen_events.add(dedup)
        topic = str(envelope.get("topic") or "")
        self._events.append(topic)
        pi = envelope.get("payment_intent")
        if topic in SETTLED_TOPICS and (pi is None or pi == self._pi_id):
            self._paid_hints += 1

    def _status_detail(self) -> dict[str, Any]:
        return {**self._detail, "stripe_events": list(self._events)}

    # -- the flow ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: PaymentFailureInput) -> PaymentFailureResult:
        mark_started(input.tenant_id, input.order_id or "", self._state)
        if not self._pi_id.startswith("pi_"):
            self._state = "failed"
            raise ApplicationError(
                "PaymentFailure needs the id of a PaymentIntent (pi_...)",
                type=ErrorCode.INPUT_INVALID,
                non_retryable=True,
            )
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        desk = self._desk = ApprovalDesk(input.tenant_id)
        desk.configure(context)
        dunning = input.dunning or context.dunning
        try:
            await self._flow(run, desk, context, dunning)
        except ApprovalDenied as exc:
            await self._move(run, exc.view.status)
            await persist_trace(run)
            await workflow.wait_condition(workflow.all_handlers_finished)
            if exc.view.status == "denied":
                return self._result(run, reason=exc.view.reason)
            raise ApplicationError(
                f"approval {exc.view.request_id} expired: nothing voided or cancelled "
                "(fail closed)",
                type=ErrorCode.APPROVAL_EXPIRED,
                non_retryable=True,
            ) from None
        except (ActivityError, ApplicationError) as exc:
            self._error = _describe(exc)
            await self._move(run, "failed")
            await persist_trace(run)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise
        await persist_trace(run)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(run)

    async def _flow(
        self, run: RunState, desk: ApprovalDesk, context: FlowContext, dunning: DunningConfig
    ) -> None:
        pi = await self._read(run, "read")
        order_id = order_from_key(pi.order_key, self._tenant)
        if self._order_id and order_id and order_id != self._order_id:
            raise ApplicationError(
                f"PaymentIntent {pi.id} is for another order than {self._order_id}",
                type=ErrorCode.ORDER_MISMATCH,
                non_retryable=True,
            )
        if self._order_id is None and order_id is not None:
            self._order_id = order_id
            workflow.upsert_search_attributes([ORDER_ID.value_set(order_id)])
        self._detail.update(
            order_id=self._order_id, amount_minor=pi.amount_minor, currency=pi.currency
        )
        if await self._settled(run, pi, "read"):
            return
        kind = classify_decline(pi.decline_code, pi.failure_code)
        self._detail.update(decline_class=kind, decline_code=pi.decline_code or pi.failure_code)
        run.decision(
            workflow.now(),
            f"decline_{kind}",
            {
                "decline_code": pi.decline_code,
                "failure_code": pi.failure_code,
                "alternatives": ["hard", "soft"],
                "dunning_waits": len(dunning.schedule),
            },
        )
        await self._move(run, "classified")

        order: GetOrderOutput | None = None
        if self._order_id is not None:
            order = await kernel_call(
                run,
                tools.shopify.GET_ORDER,
                GetOrderInput(order_id=self._order_id),
                step="get_order",
            )
            self._detail["order_name"] = order.order_name
        email = order.customer_email if order and context.customer_emails else None
        if email is None:
            run.decision(workflow.now(), "customer_not_emailed", {"order_known": order is not None})

        if kind == "soft":
            pi = await self._dun(run, pi, order, email, dunning)
            if await self._settled(run, pi, "dunning"):
                await self._thank(run, order, email)
                return
        await self._cancel(run, desk, context, pi, order, email)

    # -- dunning ----------------------------------------------------------------------

    async def _dun(
        self,
        run: RunState,
        pi: GetPaymentIntentOutput,
        order: GetOrderOutput | None,
        email: str | None,
        dunning: DunningConfig,
    ) -> GetPaymentIntentOutput:
        """The notice, then each wait of the schedule (a reminder after all but the last).
        Returns the PaymentIntent as last read: paid, or still unpaid when exhausted."""
        await self._move(run, "dunning")
        waits = dunning.schedule
        if email is not None and order is not None:
            await send_email(
                run,
                to=email,
                template="payment_failed",
                step="email_payment_failed",
                subject=f"Your payment for order {order.order_name} did not go through",
                variables=self._email_vars(pi, order, reminder=0, total=len(waits) - 1),
            )
            self._dunned = True
        for index, wait in enumerate(waits, start=1):
            self._detail["next_check_at"] = (workflow.now() + wait).isoformat()
            pi = await self._await_payment(run, wait, step=f"check:{index}")
            if pi.status in PAID or pi.status == "canceled":
                return pi
            last = index == len(waits)
            if not last and email is not None and order is not None:
                await send_email(
                    run,
                    to=email,
                    template="dunning_reminder",
                    step=f"email_reminder:{index}",
                    subject=f"Reminder: order {order.order_name} is waiting for your payment",
                    variables=self._email_vars(pi, order, reminder=index, total=len(waits) - 1),
                )
                self._detail["reminders_sent"] = index
        self._detail.pop("next_check_at", None)
        run.decision(workflow.now(), "dunning_exhausted", {"waits": len(waits)})
        return pi

    async def _await_payment(
        self, run: RunState, wait: timedelta, *, step: str
    ) -> GetPaymentIntentOutput:
        """Wait ``wait`` (a settled-topic signal wakes it for an early re-read), then
        re-read the PaymentIntent."""
        deadline = workflow.now() + wait
        checks = 0
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                break
            if checks >= SIGNAL_CHECKS_PER_WAIT:
                await workflow.sleep(remaining)
                break
            try:
                await workflow.wait_condition(
                    lambda: self._paid_hints > self._hints_read, timeout=remaining
                )
            except TimeoutError:
                break
            checks += 1
            pi = await self._read(run, f"{step}:signal:{checks}")
            if pi.status in PAID or pi.status == "canceled":
                return pi
        return await self._read(run, step)

    def _email_vars(
        self, pi: GetPaymentIntentOutput, order: GetOrderOutput, *, reminder: int, total: int
    ) -> dict[str, str]:
        return {
            "order_name": order.order_name,
            "amount_minor": str(pi.amount_minor),
            "currency": pi.currency,
            "pay_again": "Please pay again, with this card or another one, to keep your order.",
            "reminder": str(reminder),
            "reminders_total": str(total),
            "final": "true" if reminder == total else "false",
        }

    # -- outcomes ---------------------------------------------------------------------

    async def _settled(self, run: RunState, pi: GetPaymentIntentOutput, at: str) -> bool:
        """Paid (``recovered``) or voided elsewhere (``closed``): nothing left to do."""
        self._detail["payment_status"] = pi.status
        if pi.status in PAID or pi.status == "canceled":
            self._detail.pop("next_check_at", None)
        if pi.status in PAID:
            run.decision(workflow.now(), "payment_recovered", {"status": pi.status, "at": at})
            await self._move(run, "recovered")
            return True
        if pi.status == "canceled":
            run.decision(workflow.now(), "payment_intent_canceled_elsewhere", {"at": at})
            await self._move(run, "closed")
            return True
        return False

    async def _thank(self, run: RunState, order: GetOrderOutput | None, email: str | None) -> None:
        """Tell a customer we dunned that the payment arrived."""
        if self._state == "recovered" and self._dunned and email and order is not None:
            await send_email(
                run,
                to=email,
                template="payment_recovered",
                step="email_recovered",
                subject=f"Thank you: your payment for order {order.order_name} went through",
                variables={"order_name": order.order_name},
            )

    async def _cancel(
        self,
        run: RunState,
        desk: ApprovalDesk,
        context: FlowContext,
        pi: GetPaymentIntentOutput,
        order: GetOrderOutput | None,
        email: str | None,
    ) -> None:
        await self._move(run, "cancelling")
        notify = approval_notifier(run)
        void = CancelPaymentInput(
            payment_intent_id=pi.id,
            order_id=self._order_id or "",
            amount_minor=pi.amount_minor,
            currency=pi.currency,
            reason="fraudulent" if pi.decline_code == "fraudulent" else "abandoned",
        )
        action, tool = "void_payment", tools.stripe.CANCEL_PAYMENT
        decision = preview(run, tool, void, step="void")
        if decision.code is ErrorCode.APPROVAL_REQUIRED:
            assert decision.hitl is not None
            await self._move(run, "awaiting_approval")
            rule = decision.hitl.rule
            expires_in = context.timing.timeout or (rule.timeout if rule else timedelta(hours=24))
            view = await desk.obtain(
                action=action,
                roles=decision.hitl.approver_roles,
                expires_in=expires_in,
                amount_minor=pi.amount_minor,
                currency=pi.currency,
                notify=notify,
                details={"tool": f"{tool}@1", "step": "void", "payment_intent_id": pi.id},
            )
            if view.status != "approved":
                run.decision(
                    workflow.now(),
                    f"approval_{view.status}",
                    {
                        "request_id": view.request_id,
                        "tool": f"{tool}@1",
                        "decided_by": view.decided_by,
                    },
                )
                raise ApprovalDenied(view)
            # The customer may have paid while the approver decided.
            pi = await self._read(run, "check:approved")
            if await self._settled(run, pi, "approval"):
                await self._thank(run, order, email)
                return
            await self._move(run, "cancelling")
        try:
            # An approval granted above is reused, bound to this call's own key.
            await call_with_approval(
                desk,
                run,
                tool,
                void,
                step="void",
                action=action,
                amount_minor=pi.amount_minor,
                currency=pi.currency,
                notify=notify,
                timeout_override=context.timing.timeout,
            )
        except ActivityError:
            # Refused by Stripe: paid (or voided) in the last moment? Then that stands.
            pi = await self._read(run, "check:void_refused")
            if await self._settled(run, pi, "void"):
                await self._thank(run, order, email)
                return
            raise
        self._detail["payment_status"] = "canceled"
        if self._order_id is not None:
            await kernel_call(
                run,
                tools.shopify.CANCEL_ORDER,
                CancelOrderInput(
                    order_id=self._order_id, reason="DECLINED", restock=True, notify_customer=False
                ),
                step="cancel_order",
            )
        if email is not None and order is not None:
            await send_email(
                run,
                to=email,
                template="order_cancelled_unpaid",
                step="email_cancelled",
                subject=f"Order {order.order_name} was cancelled: payment not received",
                variables={
                    "order_name": order.order_name,
                    "amount_minor": str(pi.amount_minor),
                    "currency": pi.currency,
                },
            )
        await self._move(run, "cancelled")

    # -- plumbing ---------------------------------------------------------------------

    async def _read(self, run: RunState, step: str) -> GetPaymentIntentOutput:
        """Read the PaymentIntent; this answers every signal received so far."""
        self._hints_read = self._paid_hints
        return await kernel_call(
            run,
            tools.stripe.GET_PAYMENT_INTENT,
            GetPaymentIntentInput(payment_intent_id=self._pi_id, order_id=self._order_id),
            step=step,
        )

    async def _move(self, run: RunState, new: str) -> None:
        self._state = move(run, self._state, new)
        await self._write_projection(new)

    async def _write_projection(self, state: str) -> None:
        """The ``order_state`` row, when the order is known. Another flow of the same
        order (OrderFulfill) may have written it: the row is read first and this run
        continues from its version; a writer racing this one gets one more read, then
        this run stops writing the row (the ops view is not worth failing a payment flow
        for) and says so in the trace."""
        if self._order_id is None or not self._projection:
            return
        if self._rows is None:
            self._rows = OrderProjection(
                self._tenant, self._order_id, read_first=True, attempts=2, give_up=True
            )
        written = await self._rows.write(
            state,
            {
                "workflow_id": workflow.info().workflow_id,
                "payment_intent_id": self._pi_id,
                "decline_class": self._detail.get("decline_class"),
                "reminders_sent": self._detail.get("reminders_sent", 0),
            },
        )
        if not written:
            self._projection = False
            assert self._run is not None
            self._run.decision(workflow.now(), "projection_skipped", {"state": state})

    def _result(self, run: RunState, *, reason: str | None = None) -> PaymentFailureResult:
        kind = self._detail.get("decline_class")
        return PaymentFailureResult(
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            payment_intent_id=self._pi_id,
            order_id=self._order_id,
            decline_class=kind if kind in ("hard", "soft") else None,
            decline_code=self._detail.get("decline_code"),
            reminders_sent=int(self._detail.get("reminders_sent", 0)),
            payment_status=self._detail.get("payment_status"),
            cost_micros=run.cost_micros,
            reason=reason,
        )


def _describe(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    kind = getattr(cause, "type", None) or type(cause).__name__
    return f"{kind}: {cause}"
