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

Cancelled from the Temporal side (`temporal workflow cancel`, the Web UI) — while it
waits, dunning or for an approval, or during an activity — the run ends ``abandoned``
(not ``cancelled``: that says the order was cancelled) with a ``workflow_cancelled``
trace decision; a request waiting for approval is withdrawn and its row closed. Nothing
is undone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import ORDER_ID
    from kernel import tools
    from kernel.call import kernel_call, preview
    from kernel.codes import ErrorCode
    from kernel.config import DunningConfig
    from kernel.gate import HitlRequirement
    from kernel.tools.shopify import CancelOrderInput, GetOrderInput, GetOrderOutput
    from kernel.tools.stripe import (
        CancelPaymentInput,
        GetPaymentIntentInput,
        GetPaymentIntentOutput,
    )
    from workflows.common.approvals import ApprovalDenied, Notifier, call_with_approval
    from workflows.common.flow import approval_notifier, describe, mark_started, send_email
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import FlowContext
    from workflows.common.projection import OrderProjection
    from workflows.ids import PAYMENT_FAILURE, STRIPE_EVENT
    from workflows.payments.models import DeclineClass, PaymentFailureInput, PaymentFailureResult

VOID_ACTION = "void_payment"

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


@dataclass
class Collection:
    """What the run has learnt and done: the result, the ``status`` query's detail and the
    order's projection are all read from here."""

    payment_intent_id: str
    order_id: str | None  # given, or learnt from the PaymentIntent's order_key
    reminders_sent: int = 0
    amount_minor: int | None = None  # None until the PaymentIntent has been read
    currency: str | None = None
    payment_status: str | None = None
    decline_class: DeclineClass | None = None
    decline_code: str | None = None
    order_name: str | None = None
    next_check_at: str | None = None  # while a dunning wait runs
    stripe_events: list[str] = field(default_factory=list)
    reason: str | None = None  # an approver's, when the void was denied

    def shown(self) -> dict[str, Any]:
        """The detail operators see, each fact once it is known."""
        detail: dict[str, Any] = {
            "payment_intent_id": self.payment_intent_id,
            "reminders_sent": self.reminders_sent,
        }
        if self.amount_minor is not None:
            detail.update(order_id=self.order_id, amount_minor=self.amount_minor)
            detail["currency"] = self.currency
        if self.payment_status is not None:
            detail["payment_status"] = self.payment_status
        if self.decline_class is not None:
            detail.update(decline_class=self.decline_class, decline_code=self.decline_code)
        if self.order_name is not None:
            detail["order_name"] = self.order_name
        if self.next_check_at is not None:
            detail["next_check_at"] = self.next_check_at
        return {**detail, "stripe_events": list(self.stripe_events)}

    def projected(self) -> dict[str, Any]:
        """This run's fields on the order's ``order_state`` row (after its workflow id)."""
        return {
            "payment_intent_id": self.payment_intent_id,
            "decline_class": self.decline_class,
            "reminders_sent": self.reminders_sent,
        }


@workflow.defn(name=PAYMENT_FAILURE.type)
class PaymentFailure(ApprovalFlow):
    @workflow.init
    def __init__(self, input: PaymentFailureInput) -> None:
        super().__init__()
        self._tenant = input.tenant_id
        self._facts = Collection(
            payment_intent_id=input.payment_intent or "", order_id=input.order_id
        )
        self._projection: OrderProjection | None = None
        self._projecting = True  # False once this run gave up writing the row
        self._seen_events: set[str] = set()
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
        self._facts.stripe_events.append(topic)
        pi = envelope.get("payment_intent")
        if topic in SETTLED_TOPICS and (pi is None or pi == self._facts.payment_intent_id):
            self._paid_hints += 1

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: PaymentFailureInput) -> PaymentFailureResult:
        # Findable by tenant (and order) even when the input is refused just below.
        mark_started(input.tenant_id, input.order_id or "", self._state)
        self._require_payment_intent()
        context = await self._begin(PAYMENT_FAILURE, input)
        try:
            await self._collect(context, input.dunning or context.dunning)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except ApprovalDenied as exc:
            await self._not_approved(exc)
        except (ActivityError, ApplicationError) as exc:
            await self._failed(exc)
        else:
            await self._end(self._state)  # recovered, closed or cancelled: moved already
        return self._result()

    async def _collect(self, context: FlowContext, dunning: DunningConfig) -> None:
        """Dun a soft decline until paid; void and cancel a hard one, or when unpaid."""
        pi = await self._read_intent()
        if await self._settled(pi, "read"):
            return
        kind = self._classify(pi, dunning)
        await self._move("classified")
        order = await self._read_order()
        email = order.customer_email if order and context.customer_emails else None
        if email is None:
            known = {"order_known": order is not None}
            self._kernel.decision(workflow.now(), "customer_not_emailed", known)
        if kind == "soft":
            pi = await self._dun(pi, order, email, dunning)
            if await self._settled(pi, "dunning"):
                return await self._thank(order, email)
        await self._void_and_cancel(context, pi, order, email)

    # -- reading and classifying ------------------------------------------------------

    def _require_payment_intent(self) -> None:
        if not self._facts.payment_intent_id.startswith("pi_"):
            self._state = "failed"
            raise ApplicationError(
                "PaymentFailure needs the id of a PaymentIntent (pi_...)",
                type=ErrorCode.INPUT_INVALID,
                non_retryable=True,
            )

    async def _read_intent(self) -> GetPaymentIntentOutput:
        """The PaymentIntent, and from its ``order_key`` the order when the start did not
        name one (then the run is findable by it too)."""
        pi = await self._read("read")
        order_id = order_from_key(pi.order_key, self._tenant)
        given = self._facts.order_id
        if given and order_id and order_id != given:
            raise ApplicationError(
                f"PaymentIntent {pi.id} is for another order than {given}",
                type=ErrorCode.ORDER_MISMATCH,
                non_retryable=True,
            )
        if given is None and order_id is not None:
            self._facts.order_id = order_id
            workflow.upsert_search_attributes([ORDER_ID.value_set(order_id)])
        self._facts.amount_minor, self._facts.currency = pi.amount_minor, pi.currency
        return pi

    def _classify(self, pi: GetPaymentIntentOutput, dunning: DunningConfig) -> DeclineClass:
        kind = classify_decline(pi.decline_code, pi.failure_code)
        self._facts.decline_class = kind
        self._facts.decline_code = pi.decline_code or pi.failure_code
        self._kernel.decision(
            workflow.now(),
            f"decline_{kind}",
            {
                "decline_code": pi.decline_code,
                "failure_code": pi.failure_code,
                "alternatives": ["hard", "soft"],
                "dunning_waits": len(dunning.schedule),
            },
        )
        return kind

    async def _read_order(self) -> GetOrderOutput | None:
        """The Shopify order, when the run knows which one it is."""
        if self._facts.order_id is None:
            return None
        order = await kernel_call(
            self._kernel,
            tools.shopify.GET_ORDER,
            GetOrderInput(order_id=self._facts.order_id),
            step="get_order",
        )
        self._facts.order_name = order.order_name
        return order

    async def _read(self, step: str) -> GetPaymentIntentOutput:
        """Read the PaymentIntent; this answers every signal received so far."""
        self._hints_read = self._paid_hints
        return await kernel_call(
            self._kernel,
            tools.stripe.GET_PAYMENT_INTENT,
            GetPaymentIntentInput(
                payment_intent_id=self._facts.payment_intent_id, order_id=self._facts.order_id
            ),
            step=step,
        )

    # -- dunning ----------------------------------------------------------------------

    async def _dun(
        self,
        pi: GetPaymentIntentOutput,
        order: GetOrderOutput | None,
        email: str | None,
        dunning: DunningConfig,
    ) -> GetPaymentIntentOutput:
        """The notice, then each wait of the schedule (a reminder after all but the last).
        Returns the PaymentIntent as last read: paid, or still unpaid when exhausted."""
        await self._move("dunning")
        waits = dunning.schedule
        if email is not None and order is not None:
            await self._tell_unpaid(email, order, pi, reminder=0, total=len(waits) - 1)
            self._dunned = True
        for index, wait in enumerate(waits, start=1):
            self._facts.next_check_at = (workflow.now() + wait).isoformat()
            pi = await self._await_payment(wait, step=f"check:{index}")
            if pi.status in PAID or pi.status == "canceled":
                return pi
            last = index == len(waits)
            if not last and email is not None and order is not None:
                await self._tell_unpaid(email, order, pi, reminder=index, total=len(waits) - 1)
                self._facts.reminders_sent = index
        self._facts.next_check_at = None
        self._kernel.decision(workflow.now(), "dunning_exhausted", {"waits": len(waits)})
        return pi

    async def _await_payment(self, wait: timedelta, *, step: str) -> GetPaymentIntentOutput:
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
            pi = await self._read(f"{step}:signal:{checks}")
            if pi.status in PAID or pi.status == "canceled":
                return pi
        return await self._read(step)

    async def _tell_unpaid(
        self,
        email: str,
        order: GetOrderOutput,
        pi: GetPaymentIntentOutput,
        *,
        reminder: int,
        total: int,
    ) -> None:
        """The "pay again" notice (``reminder`` 0) or the ``reminder``-th of ``total``."""
        if reminder == 0:
            template, step = "payment_failed", "email_payment_failed"
            subject = f"Your payment for order {order.order_name} did not go through"
        else:
            template, step = "dunning_reminder", f"email_reminder:{reminder}"
            subject = f"Reminder: order {order.order_name} is waiting for your payment"
        await send_email(
            self._kernel,
            to=email,
            template=template,
            step=step,
            subject=subject,
            variables=_dunning_vars(pi, order, reminder=reminder, total=total),
        )

    # -- the outcomes -----------------------------------------------------------------

    async def _settled(self, pi: GetPaymentIntentOutput, at: str) -> bool:
        """Paid (``recovered``) or voided elsewhere (``closed``): nothing left to do."""
        self._facts.payment_status = pi.status
        if pi.status in PAID or pi.status == "canceled":
            self._facts.next_check_at = None
        if pi.status in PAID:
            data = {"status": pi.status, "at": at}
            self._kernel.decision(workflow.now(), "payment_recovered", data)
            await self._move("recovered")
            return True
        if pi.status == "canceled":
            self._kernel.decision(workflow.now(), "payment_intent_canceled_elsewhere", {"at": at})
            await self._move("closed")
            return True
        return False

    async def _thank(self, order: GetOrderOutput | None, email: str | None) -> None:
        """Tell a customer we dunned that the payment arrived."""
        if self._state == "recovered" and self._dunned and email and order is not None:
            await send_email(
                self._kernel,
                to=email,
                template="payment_recovered",
                step="email_recovered",
                subject=f"Thank you: your payment for order {order.order_name} went through",
                variables={"order_name": order.order_name},
            )

    async def _void_and_cancel(
        self,
        context: FlowContext,
        pi: GetPaymentIntentOutput,
        order: GetOrderOutput | None,
        email: str | None,
    ) -> None:
        """Void the PaymentIntent (approved first when the HITL rule says so), cancel the
        order in Shopify, tell the customer. Paid meanwhile: thanked, nothing voided."""
        await self._move("cancelling")
        notify = approval_notifier(self._kernel)
        void = self._void_input(pi)
        gate = preview(self._kernel, tools.stripe.CANCEL_PAYMENT, void, step="void")
        if gate.code is ErrorCode.APPROVAL_REQUIRED:
            assert gate.hitl is not None
            await self._approve_void(gate.hitl, void, context, notify)
            # The customer may have paid while the approver decided.
            pi = await self._read("check:approved")
            if await self._settled(pi, "approval"):
                return await self._thank(order, email)
            await self._move("cancelling")
        if not await self._void(void, pi, context, notify):
            return await self._thank(order, email)
        self._facts.payment_status = "canceled"
        if self._facts.order_id is not None:
            await self._cancel_order(self._facts.order_id)
        if email is not None and order is not None:
            await self._tell_cancelled(email, order, pi)
        await self._move("cancelled")

    def _void_input(self, pi: GetPaymentIntentOutput) -> CancelPaymentInput:
        return CancelPaymentInput(
            payment_intent_id=pi.id,
            order_id=self._facts.order_id or "",
            amount_minor=pi.amount_minor,
            currency=pi.currency,
            reason="fraudulent" if pi.decline_code == "fraudulent" else "abandoned",
        )

    async def _approve_void(
        self,
        hitl: HitlRequirement,
        void: CancelPaymentInput,
        context: FlowContext,
        notify: Notifier,
    ) -> None:
        """Wait for the void's approval; denied or expired: ``ApprovalDenied``."""
        await self._move("awaiting_approval")
        rule = hitl.rule
        expires_in = context.timing.timeout or (rule.timeout if rule else timedelta(hours=24))
        tool = tools.stripe.CANCEL_PAYMENT.ref
        view = await self._approvals.obtain(
            action=VOID_ACTION,
            roles=hitl.approver_roles,
            expires_in=expires_in,
            amount_minor=void.amount_minor,
            currency=void.currency,
            notify=notify,
            details={"tool": tool, "step": "void", "payment_intent_id": void.payment_intent_id},
        )
        if view.status != "approved":
            self._kernel.decision(
                workflow.now(),
                f"approval_{view.status}",
                {"request_id": view.request_id, "tool": tool, "decided_by": view.decided_by},
            )
            raise ApprovalDenied(view)

    async def _void(
        self,
        void: CancelPaymentInput,
        pi: GetPaymentIntentOutput,
        context: FlowContext,
        notify: Notifier,
    ) -> bool:
        """The void; an approval granted above is reused, bound to this call's own key.
        False: Stripe refused it because the customer paid (or it was voided) meanwhile."""
        try:
            await call_with_approval(
                self._approvals,
                self._kernel,
                tools.stripe.CANCEL_PAYMENT,
                void,
                step="void",
                action=VOID_ACTION,
                amount_minor=pi.amount_minor,
                currency=pi.currency,
                notify=notify,
                timeout_override=context.timing.timeout,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise  # the run was cancelled, Stripe did not refuse
            # Refused by Stripe: paid (or voided) in the last moment? Then that stands.
            pi = await self._read("check:void_refused")
            if await self._settled(pi, "void"):
                return False
            raise
        return True

    async def _cancel_order(self, order_id: str) -> None:
        await kernel_call(
            self._kernel,
            tools.shopify.CANCEL_ORDER,
            CancelOrderInput(
                order_id=order_id, reason="DECLINED", restock=True, notify_customer=False
            ),
            step="cancel_order",
        )

    async def _tell_cancelled(
        self, email: str, order: GetOrderOutput, pi: GetPaymentIntentOutput
    ) -> None:
        await send_email(
            self._kernel,
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

    # -- how the run ends otherwise ---------------------------------------------------

    async def _not_approved(self, exc: ApprovalDenied) -> None:
        """Denied: the run completes ``denied``. Expired: it fails closed. Either way
        nothing is voided or cancelled."""
        view = exc.view
        await self._end(view.status)
        if view.status != "denied":
            raise ApplicationError(
                f"approval {view.request_id} expired: nothing voided or cancelled (fail closed)",
                type=ErrorCode.APPROVAL_EXPIRED,
                non_retryable=True,
            ) from None
        self._facts.reason = view.reason

    async def _failed(self, exc: ActivityError | ApplicationError) -> NoReturn:
        """End ``failed`` and raise again; cancelled while an activity ran, the run ends
        ``abandoned`` instead."""
        if is_cancelled_exception(exc):
            await self._cancelled()
        else:
            self._error = describe(exc)
            await self._end("failed")
        raise exc

    async def _cancelled(self) -> None:
        """Cancelled from the Temporal side: nothing to undo (a void is not undone; the
        approval desk has withdrawn a pending request). It ends ``abandoned``: the
        collection was given up, the order is not cancelled. The caller re-raises, so
        the run ends CANCELLED."""
        self._kernel.decision(workflow.now(), "workflow_cancelled", {"stopped_in": self._state})
        await self._end("abandoned")

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    async def _project(self, state: str, previous: str, *, rides: bool = False) -> None:
        """The ``order_state`` row on each move, when the order is known. Another flow of
        the same order (OrderFulfill) may have written it: the row is read first and this
        run continues from its version; a writer racing this one gets one more read, then
        this run stops writing the row (the ops view is not worth failing a payment flow
        for) and says so in the trace."""
        order_id = self._facts.order_id
        if order_id is None or not self._projecting or state == previous:
            return
        if self._projection is None:
            self._projection = OrderProjection(
                self._tenant, order_id, read_first=True, attempts=2, give_up=True
            )
        data = {"workflow_id": workflow.info().workflow_id, **self._facts.projected()}
        if not await self._projection.write(state, data):
            self._projecting = False
            self._kernel.decision(workflow.now(), "projection_skipped", {"state": state})

    def _result(self) -> PaymentFailureResult:
        f = self._facts
        return PaymentFailureResult(
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            payment_intent_id=f.payment_intent_id,
            order_id=f.order_id,
            decline_class=f.decline_class,
            decline_code=f.decline_code,
            reminders_sent=f.reminders_sent,
            payment_status=f.payment_status,
            cost_micros=self._kernel.cost_micros,
            reason=f.reason,
        )


def _dunning_vars(
    pi: GetPaymentIntentOutput, order: GetOrderOutput, *, reminder: int, total: int
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
