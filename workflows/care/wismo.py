"""WF05 WISMO ("where is my order"): a customer's email → the order → its tracking → a
drafted reply → sent, or reviewed by a person first.

1. The email arrives with the start (the ingress's ``inbound_email`` signal for a SendGrid
   Inbound Parse post, one run per Message-ID; or in the input).
2. The order: an order name in the subject or text (``#1001``), else the sender's most
   recent order (``shopify.search_orders@1``). **The sender must be that order's
   customer** (addresses compared normalised, and SendGrid's SPF or DKIM passed):
   otherwise the reply is a fixed, polite non-answer that names no order, and neither
   the trace nor the status shows which order was looked at.
3. Tracking: the Shopify fulfillment's (OrderFulfill writes Printful's ``shipment_sent``
   tracking there) and Printful's order status (``printful.get_order@1`` by the order's
   external id; none yet is an answer).
4. The draft: ``llm.complete@1`` with the pinned ``wismo_reply@1`` prompt and the model the
   tenant's settings pin, inside the run's token and cost bounds. The customer's text is
   data in the prompt; nothing the model writes chooses a tool.
5. Review: if the email asks for a refund, return or cancellation (``intent``, fixed
   rules over the text, never the model), or the draft's confidence is below the tenant's
   threshold (or missing), an approval with the draft editable (action
   ``wismo_review``). Approved: the reply sent is the reviewer's edit when there is one.
   Denied: nothing is sent. Expired: nothing is sent and ops are told (the desk's notice).
6. The reply: ``sendgrid.send_email@1`` to the sender, ``In-Reply-To`` the customer's
   Message-ID (the activity writes the receipt; a retry never sends twice).

Deterministic: the email, the order and the draft come from history; time is
``workflow.now()``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import APPROVAL_PENDING, TENANT_ID
    from kernel import tools
    from kernel.call import internal_activity, kernel_call
    from kernel.codes import ErrorCode
    from kernel.tools.llm import CompleteInput, CompleteOutput
    from kernel.tools.printful import GetPrintfulOrderOutput, PrintfulOrderRef
    from kernel.tools.sendgrid import SendEmailInput
    from kernel.tools.shopify import OrderSummary, SearchOrdersInput
    from workflows.care.intent import asks_refund_or_cancel, order_name
    from workflows.care.models import (
        MAX_MESSAGE_CHARS,
        REVIEW_ACTION,
        WISMO_SETTINGS,
        InboundEmail,
        Outcome,
        WismoInput,
        WismoResult,
        WismoSettings,
        WismoSettingsRequest,
        normalised_address,
    )
    from workflows.common.flow import approval_notifier, describe, error_type
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import FlowContext
    from workflows.ids import INBOUND_EMAIL, WISMO, printful_external_id

PROMPT_ID = "wismo_reply"
TEMPLATE = "wismo_reply"
# How long a run started by the ingress waits for its start signal (it is in the first
# workflow task; this only bounds a run started without one).
EMAIL_WAIT = timedelta(minutes=5)
SUBJECT_MAX = 200
_MESSAGE_ID = re.compile(r"^<[^<>\s]{1,900}>$")  # as SendEmailInput.in_reply_to takes it

# What a sender who is not the order's customer (or has no order) is told: no order data.
NOT_YOURS = (
    "Thank you for your message. We could not match it to an order placed with this email "
    "address, so we cannot share order details here. Please write to us from the address "
    "you ordered with, and include your order number (for example #1001); we will gladly "
    "help."
)
NO_ORDER = (
    "Thank you for your message. We could not find an order for this email address. If "
    "you ordered with another address, please write to us from that address and include "
    "your order number (for example #1001); we will gladly help."
)


class Answering:
    """What the run found and did (the result and the ``status`` query read it). Order
    facts are kept only once the sender is known to be the order's customer."""

    def __init__(self) -> None:
        self.outcome: Outcome | None = None
        self.order: OrderSummary | None = None
        self.printful: GetPrintfulOrderOutput | None = None
        self.review_reason: str | None = None
        self.reply_message_id: str | None = None
        self.confidence: float | None = None

    def shown(self) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        if self.outcome is not None:
            detail["outcome"] = self.outcome
        if self.order is not None:
            detail["order_id"] = self.order.order_id
            detail["order_name"] = self.order.order_name
        if self.review_reason is not None:
            detail["review_reason"] = self.review_reason
        if self.confidence is not None:
            detail["confidence"] = self.confidence
        if self.reply_message_id is not None:
            detail["reply_message_id"] = self.reply_message_id
        return detail


@workflow.defn(name=WISMO.type)
class Wismo(ApprovalFlow):
    @workflow.init
    def __init__(self, input: WismoInput) -> None:
        super().__init__()
        self._email: InboundEmail | None = input.email
        self._unreadable: str | None = None
        self._facts = Answering()

    @workflow.signal(name=INBOUND_EMAIL)
    def inbound_email(self, envelope: dict[str, Any]) -> None:
        """The ingress's envelope (``ingress.handoff.EventEnvelope`` as JSON); the first
        email is the run's, a repeat (same Message-ID, the run's id) changes nothing."""
        if self._email is not None:
            return
        payload = envelope.get("payload")
        try:
            self._email = InboundEmail.from_payload(payload if isinstance(payload, dict) else {})
        except ValueError as exc:
            self._unreadable = f"{ErrorCode.INPUT_INVALID}: the email is unreadable ({exc})"

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: WismoInput) -> WismoResult:
        # Findable by tenant however it was started (`autobiz wismo list` lists by it).
        workflow.upsert_search_attributes(
            [TENANT_ID.value_set(input.tenant_id), APPROVAL_PENDING.value_set(False)]
        )
        context = await self._begin(WISMO, input)
        try:
            email = await self._wait_for_email()
            settings = await self._settings(input.tenant_id)
            await self._answer(input.tenant_id, email, settings, context)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            if is_cancelled_exception(exc):
                await self._end_cancelled()
                raise
            self._facts.outcome = "failed"
            self._error = describe(exc)
            await self._end("failed")
            raise
        return self._result()

    async def _wait_for_email(self) -> InboundEmail:
        try:
            await workflow.wait_condition(
                lambda: self._email is not None or self._unreadable is not None,
                timeout=EMAIL_WAIT,
            )
        except TimeoutError:
            self._unreadable = f"{ErrorCode.INPUT_INVALID}: no email arrived with the start"
        if self._email is None:
            raise ApplicationError(
                self._unreadable or "no email", type=ErrorCode.INPUT_INVALID, non_retryable=True
            )
        return self._email

    async def _settings(self, tenant_id: str) -> WismoSettings:
        settings = await internal_activity(
            WISMO_SETTINGS, WismoSettingsRequest(tenant_id=tenant_id), result_type=WismoSettings
        )
        assert settings is not None
        return settings

    async def _answer(
        self, tenant_id: str, email: InboundEmail, settings: WismoSettings, context: FlowContext
    ) -> None:
        await self._move("looking_up")
        order = await self._find_order(email)
        if order is None:
            await self._reply_without_order(email, "no_order", NO_ORDER)
            return
        if not _is_customer(email, order):
            # The order found stays out of the trace, the status and the reply.
            await self._reply_without_order(email, "not_customer", NOT_YOURS)
            return
        self._facts.order = order
        self._kernel.decision(workflow.now(), "wismo_order_matched", {"order_id": order.order_id})
        self._facts.printful = await self._printful_order(tenant_id, order)
        await self._move("drafting")
        draft = await self._draft(email, order, settings)
        reason = self._review_reason(email, draft, settings)
        text: str | None = draft.text
        if reason is not None:
            text = await self._review(email, order, draft.text, reason, settings, context)
            if text is None:
                return  # denied or expired: the run has ended, nothing sent
        assert text is not None
        await self._send(email, text, order.order_name, step="email_reply")
        self._facts.outcome = "answered" if reason is None else "answered_after_review"
        await self._end("answered")

    # -- the steps --------------------------------------------------------------------

    async def _find_order(self, email: InboundEmail) -> OrderSummary | None:
        """By the order name the email quotes, else the sender's most recent order."""
        name = order_name(email.subject, email.text)
        query = (
            SearchOrdersInput(name=name, first=1)
            if name is not None
            else SearchOrdersInput(email=email.from_address, first=1)
        )
        found = await kernel_call(
            self._kernel, tools.shopify.SEARCH_ORDERS, query, step="find_order"
        )
        return found.orders[0] if found.orders else None

    async def _printful_order(
        self, tenant_id: str, order: OrderSummary
    ) -> GetPrintfulOrderOutput | None:
        """Printful's view of the order (by our external id); None: not sent there yet."""
        ref = PrintfulOrderRef(external_id=printful_external_id(tenant_id, order.order_id))
        try:
            return await kernel_call(
                self._kernel, tools.printful.GET_ORDER, ref, step="printful_order"
            )
        except ActivityError as exc:
            if error_type(exc) != ErrorCode.PROVIDER_NOT_FOUND:
                raise
            return None

    async def _draft(
        self, email: InboundEmail, order: OrderSummary, settings: WismoSettings
    ) -> CompleteOutput:
        facts = _tracking_facts(order, self._facts.printful)
        draft = await kernel_call(
            self._kernel,
            tools.llm.COMPLETE,
            CompleteInput(
                model=settings.model,
                fallback_model=settings.fallback_model,
                prompt_id=PROMPT_ID,
                prompt_version=settings.prompt_version,
                max_tokens=settings.max_tokens,
                variables={
                    **facts,
                    "order_name": order.order_name,
                    "customer_name": email.from_name.split(" ")[0] or "there",
                    "customer_message": _message(email),
                },
            ),
            step="draft_reply",
        )
        self._facts.confidence = draft.confidence
        return draft

    def _review_reason(
        self, email: InboundEmail, draft: CompleteOutput, settings: WismoSettings
    ) -> str | None:
        """Why a person must see the reply first (None: it goes out as drafted). Decided
        here, from the text and the number, never by what the model wrote."""
        if asks_refund_or_cancel(email.subject, email.text):
            reason = "refund_or_cancel_request"
        elif draft.confidence is None:
            reason = "no_confidence"
        elif draft.confidence < settings.confidence_threshold:
            reason = "low_confidence"
        else:
            return None
        self._facts.review_reason = reason
        self._kernel.decision(
            workflow.now(),
            "wismo_review_required",
            {
                "reason": reason,
                "confidence": draft.confidence,
                "threshold": settings.confidence_threshold,
            },
        )
        return reason

    async def _review(
        self,
        email: InboundEmail,
        order: OrderSummary,
        draft: str,
        reason: str,
        settings: WismoSettings,
        context: FlowContext,
    ) -> str | None:
        """The approval with the draft editable: the text to send, or None (the run has
        ended denied or expired, nothing sent)."""
        await self._move("in_review")
        view = await self._approvals.obtain(
            action=REVIEW_ACTION,
            roles=settings.review_roles,
            expires_in=context.timing.timeout or settings.review_timeout,
            amount_minor=None,
            currency=None,
            notify=approval_notifier(self._kernel),
            details={
                "reason": reason,
                "order_name": order.order_name,
                "subject": email.subject[:200],
                "customer_message": _message(email),
            },
            draft=draft,
        )
        if view.status == "approved":
            return view.final_text
        self._facts.outcome = "denied" if view.status == "denied" else "expired"
        self._kernel.decision(
            workflow.now(), "wismo_not_sent", {"review": view.status, "request": view.request_id}
        )
        await self._end(view.status)
        return None

    async def _reply_without_order(self, email: InboundEmail, outcome: Outcome, text: str) -> None:
        """The polite non-answer: fixed words, no order data, no model."""
        self._facts.outcome = outcome
        self._kernel.decision(workflow.now(), "wismo_no_order_data", {"outcome": outcome})
        await self._send(email, text, None, step="email_non_answer")
        await self._end("replied")

    async def _send(
        self, email: InboundEmail, text: str, order_name_: str | None, *, step: str
    ) -> None:
        variables = {"body": text}
        if order_name_ is not None:
            variables["order_name"] = order_name_
        sent = await kernel_call(
            self._kernel,
            tools.sendgrid.SEND_EMAIL,
            SendEmailInput(
                to=email.from_address,
                template=TEMPLATE,
                subject=_reply_subject(email.subject),
                variables=variables,
                category="customer_care",
                in_reply_to=_reply_ref(email.message_id),
            ),
            step=step,
        )
        self._facts.reply_message_id = sent.message_id or None

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        detail = self._facts.shown()
        if self._email is not None:
            detail["message_id"] = self._email.message_id
        return detail

    def _result(self) -> WismoResult:
        f, history = self._facts, self._approvals.history
        return WismoResult(
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            outcome=f.outcome or "failed",
            order_id=f.order.order_id if f.order else None,
            order_name=f.order.order_name if f.order else None,
            review_reason=f.review_reason,
            reply_message_id=f.reply_message_id,
            review=history[-1] if history else None,
            cost_micros=self._kernel.cost_micros,
            reason=self._error,
            finished_at=workflow.now(),
        )


def _is_customer(email: InboundEmail, order: OrderSummary) -> bool:
    """The sender is the order's customer: the same address (normalised), and SendGrid
    found the sender authentic (SPF or DKIM), so a forged From gets nothing."""
    customer = normalised_address(order.customer_email or "")
    return bool(customer) and email.authenticated and customer == email.from_address


def _tracking_facts(order: OrderSummary, printful: GetPrintfulOrderOutput | None) -> dict[str, str]:
    """Status and tracking for the prompt: Shopify's fulfillment first (where
    OrderFulfill wrote Printful's tracking), Printful's shipment otherwise."""
    number = url = carrier = None
    if order.tracking is not None and order.tracking.number:
        number, url, carrier = order.tracking.number, order.tracking.url, order.tracking.company
    elif printful is not None and printful.shipments:
        last = printful.shipments[-1]
        number, url, carrier = last.tracking_number, last.tracking_url, last.carrier
    return {
        "status": _status(order, printful, shipped=number is not None),
        "carrier": carrier or "our carrier",
        "tracking_number": number or "not assigned yet",
        "tracking_url": url or "(a tracking link follows once it ships)",
    }


def _status(order: OrderSummary, printful: GetPrintfulOrderOutput | None, *, shipped: bool) -> str:
    if shipped or (order.fulfillment_status or "").upper() == "FULFILLED":
        return "on its way"
    status = (printful.status if printful else "").lower()
    if status in ("inprocess", "in_process", "onhold", "on_hold"):
        return "being printed"
    if status in ("canceled", "cancelled"):
        return "cancelled"
    return "being prepared"


def _message(email: InboundEmail) -> str:
    text = email.text.strip() or email.subject
    return text[:MAX_MESSAGE_CHARS]


def _reply_ref(message_id: str) -> str | None:
    """The Message-ID as ``In-Reply-To`` takes it (``<id@host>``); a malformed one is not
    threaded rather than refused."""
    return message_id if _MESSAGE_ID.match(message_id) else None


def _reply_subject(subject: str) -> str:
    base = subject.strip() or "Your order"
    if not base.lower().startswith("re:"):
        base = f"Re: {base}"
    return base[:SUBJECT_MAX]
