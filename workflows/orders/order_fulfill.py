"""WF01 OrderFulfill: a paid (or authorised) Shopify order, printed, shipped and told.

shopify.get_order → risk.assess → [approval when the HITL rule says so] →
stripe.capture_payment (or verify paid) → printful.create_order (external_id = order key)
→ printful.confirm_order → wait for the shipment (``printful_shipment`` signal, or the
ingress's ``printful_event``; polls Printful when the wait times out) →
shopify.create_fulfillment with tracking → sendgrid.send_email.

Compensation: the Printful draft is cancelled and the capture refunded (through the gate,
so a large refund waits for approval) if the flow fails before the order is confirmed;
after confirmation production has started and nothing is undone here.

Cancellation (``cancel_requested``, sent by OrderCancellation): the flow stops before its
next side effect — before the capture (a pending capture approval is withdrawn), before
the Printful create and confirm, and while it waits for the shipment — ends
``cancelled`` and undoes nothing itself: the cancellation flow owns the undo. Once the
shipment is known the flow finishes instead. Either way it answers the order's
cancellation workflow with ``fulfill_stopped``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import kernel_call, persist_trace, preview, start_run
    from kernel.state import RunState
    from kernel.tools.printful import (
        CreatePrintfulOrderInput,
        PrintfulItem,
        PrintfulOrderRef,
        PrintfulRecipient,
        Shipment,
    )
    from kernel.tools.risk import RiskInput
    from kernel.tools.shopify import CreateFulfillmentInput, GetOrderInput, GetOrderOutput
    from kernel.tools.stripe import CapturePaymentInput, CreateRefundInput
    from workflows.common.approvals import ApprovalDenied, ApprovalDesk, call_with_approval
    from workflows.common.flow import (
        Saga,
        approval_notifier,
        load_context,
        mark_started,
        move,
        send_email,
    )
    from workflows.common.handlers import ApprovalHandlers
    from workflows.common.projection import OrderProjection
    from workflows.ids import (
        CANCEL_REQUESTED,
        FULFILL_STOPPED,
        ORDER_FULFILL,
        PRINTFUL_EVENT,
        SHOPIFY_EVENT,
        STRIPE_EVENT,
        cancellation_workflow_id,
        printful_external_id,
    )
    from workflows.orders.models import (
        CancelRequest,
        FulfillStopped,
        OrderFulfillInput,
        OrderFulfillResult,
        ShipmentNotice,
    )

WORKFLOW_TYPE = ORDER_FULFILL.key
SHIPPED_TOPICS = frozenset({"shipment_sent", "package_shipped"})
_PF_SKU = re.compile(r"^PF-(\d+)$", re.IGNORECASE)


def printful_items(order: GetOrderOutput, default_variant: int) -> list[PrintfulItem]:
    """Shopify line items as Printful catalog items (SKU ``PF-<variant>``, else default)."""
    items = []
    for li in order.line_items:
        match = _PF_SKU.match(li.sku)
        variant = int(match.group(1)) if match else default_variant
        items.append(PrintfulItem(catalog_variant_id=variant, quantity=li.quantity))
    return items


class CancelRequested(Exception):
    """Raised at a checkpoint once ``cancel_requested`` has arrived (caught in ``run``)."""


@workflow.defn(name=ORDER_FULFILL.type)
class OrderFulfill(ApprovalHandlers):
    def __init__(self) -> None:
        super().__init__()
        self._order_id = ""
        self._shipment: ShipmentNotice | None = None
        self._projection: OrderProjection | None = None
        self._cancel: CancelRequest | None = None

    # -- handlers ---------------------------------------------------------------------

    @workflow.signal(name="printful_shipment")
    def printful_shipment(self, notice: ShipmentNotice) -> None:
        if self._shipment is None:
            self._shipment = notice

    @workflow.signal(name=PRINTFUL_EVENT)
    def printful_event(self, envelope: dict[str, Any]) -> None:
        """The ingress's envelope (``ingress.handoff.EventEnvelope`` as JSON)."""
        if envelope.get("topic") not in SHIPPED_TOPICS or self._shipment is not None:
            return
        payload = envelope.get("payload") or {}
        data = payload.get("data") if isinstance(payload, dict) else None
        shipment = (data or {}).get("shipment") or {}
        if shipment.get("tracking_number"):
            self._shipment = ShipmentNotice(
                carrier=str(shipment.get("carrier") or "unknown"),
                tracking_number=str(shipment["tracking_number"]),
                tracking_url=shipment.get("tracking_url"),
            )

    @workflow.signal(name=SHOPIFY_EVENT)
    def shopify_event(self, envelope: dict[str, Any]) -> None:
        """A repeated ``orders/paid`` (signal-with-start on a running flow): nothing to do."""

    @workflow.signal(name=CANCEL_REQUESTED)
    def cancel_requested(self, request: CancelRequest) -> None:
        """Stop before the next side effect (the first request wins); a capture approval
        still pending is withdrawn so the wait ends now."""
        if self._cancel is not None:
            return
        self._cancel = request
        if self._desk is not None:
            self._desk.withdraw(request.requested_by, f"order cancellation ({request.reason})")

    @workflow.signal(name=STRIPE_EVENT)
    def stripe_event(self, envelope: dict[str, Any]) -> None:
        self._detail.setdefault("stripe_events", []).append(str(envelope.get("topic")))

    # -- the flow ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderFulfillInput) -> OrderFulfillResult:
        self._tenant = input.tenant_id
        self._order_id = input.order_id
        mark_started(input.tenant_id, input.order_id, self._state)
        context = await load_context(input.context, input.tenant_id, WORKFLOW_TYPE)
        run = self._run = start_run(context.policy, principal=input.principal)
        desk = self._desk = ApprovalDesk(input.tenant_id)
        desk.configure(context)
        saga = Saga()
        result: dict[str, Any] = {}
        try:
            await self._flow(input, context.customer_emails, run, desk, saga, result)
        except CancelRequested:
            return await self._stop(run, input, result)
        except asyncio.CancelledError:
            await self._cancelled(run, input, saga)
            raise
        except (ActivityError, ApplicationError, ApprovalDenied) as exc:
            if self._cancel is not None:
                # The cancellation flow owns the order now: no compensation here.
                return await self._stop(run, input, result)
            if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
                await self._cancelled(run, input, saga)  # cancelled during an activity
                raise
            self._error = _describe(exc)
            denied = isinstance(exc, ApprovalDenied)
            await saga.compensate(run)
            self._detail["compensated"] = saga.done
            await self._move(run, input, "rejected" if denied else "failed")
            await persist_trace(run)
            await self._answer_cancel(stopped=False)
            if isinstance(exc, ApprovalDenied):
                if exc.view.status == "denied":
                    return self._result(input, run, result)
                raise ApplicationError(
                    f"approval {exc.view.request_id} expired: failed closed",
                    type="APPROVAL_EXPIRED",
                    non_retryable=True,
                ) from None
            raise
        await self._move(run, input, "completed")
        await persist_trace(run)
        await self._answer_cancel(stopped=False)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(input, run, result)

    async def _cancelled(self, run: RunState, input: OrderFulfillInput, saga: Saga) -> None:
        """Cancelled from the Temporal side (`temporal workflow cancel`, the Web UI): undo
        what the saga holds (refund the capture, cancel the draft) and record it; the
        caller re-raises, so the run ends CANCELLED."""
        run.decision(workflow.now(), "workflow_cancelled", {"stopped_in": self._state})
        await saga.compensate(run)
        self._detail["compensated"] = saga.done
        await self._move(run, input, "cancelled")
        await persist_trace(run)
        await self._answer_cancel(stopped=True)

    async def _stop(
        self, run: RunState, input: OrderFulfillInput, result: dict[str, Any]
    ) -> OrderFulfillResult:
        """Cancelled from outside: end here, undo nothing, tell the cancellation flow."""
        request = self._cancel
        assert request is not None
        stopped_in = self._state
        run.decision(
            workflow.now(),
            "cancel_requested",
            {
                "requested_by": request.requested_by,
                "reason": request.reason,
                "stopped_in": stopped_in,
            },
        )
        self._detail["cancelled_in"] = stopped_in
        await self._move(run, input, "cancelled")
        await persist_trace(run)
        await self._answer_cancel(stopped=True, state=stopped_in)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(input, run, result)

    async def _answer_cancel(self, *, stopped: bool, state: str | None = None) -> None:
        """Answer a cancellation request (if one came) with ``fulfill_stopped``; a
        cancellation flow that is not running (a request sent by hand) is not an error."""
        if self._cancel is None:
            return
        answer = FulfillStopped(
            workflow_id=workflow.info().workflow_id, stopped=stopped, state=state or self._state
        )
        target = cancellation_workflow_id(self._tenant, self._order_id)
        try:
            await workflow.get_external_workflow_handle(target).signal(FULFILL_STOPPED, answer)
        except FailureError as exc:
            workflow.logger.warning("cancellation flow %s not told: %s", target, exc)

    def _checkpoint(self) -> None:
        """Before each side effect: stop here if a cancellation was requested."""
        if self._cancel is not None:
            raise CancelRequested

    def _result(
        self, input: OrderFulfillInput, run: RunState, result: dict[str, Any]
    ) -> OrderFulfillResult:
        return OrderFulfillResult(
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            cost_micros=run.cost_micros,
            **result,
        )

    async def _move(self, run: RunState, input: OrderFulfillInput, new: str) -> None:
        self._state = move(run, self._state, new)
        if self._projection is None:
            # The flow that starts an order's row; another flow of the order (a payment
            # failure that recovered) may have written it first: read on conflict.
            self._projection = OrderProjection(input.tenant_id, input.order_id, read_first=False)
        await self._projection.write(
            new, {"workflow_id": workflow.info().workflow_id, **self._detail}
        )

    async def _flow(
        self,
        input: OrderFulfillInput,
        customer_emails: bool,
        run: RunState,
        desk: ApprovalDesk,
        saga: Saga,
        result: dict[str, Any],
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
        ship_to = input.ship_to or _recipient(order)
        if ship_to is None:
            raise ApplicationError(
                f"order {input.order_id} has no shipping address",
                type="NO_SHIPPING_ADDRESS",
                non_retryable=True,
            )
        await self._move(run, input, "assessing")
        risk = await kernel_call(
            run,
            tools.risk.ASSESS,
            RiskInput(
                order_id=input.order_id,
                amount_minor=order.total_minor,
                currency=order.currency,
                country_code=ship_to.country_code,
            ),
            step="risk",
        )
        self._detail["risk"] = risk.level

        # Payment: capture the authorisation (approval first when the rule says so).
        payment_intent = input.payment_intent or order.payment_intent_id
        if payment_intent is not None:
            self._checkpoint()
            await self._move(run, input, "capturing")
            capture = CapturePaymentInput(
                payment_intent_id=payment_intent,
                order_id=input.order_id,
                amount_minor=order.total_minor,
                currency=order.currency,
                risk_level=risk.level,
            )
            if self._needs_approval(run, capture):
                await self._move(run, input, "awaiting_approval")
            captured = await call_with_approval(
                desk,
                run,
                tools.stripe.CAPTURE_PAYMENT,
                capture,
                step="capture",
                action="capture_payment",
                amount_minor=order.total_minor,
                currency=order.currency,
                notify=notify,
            )
            result.update(captured_minor=captured.amount_captured_minor, currency=order.currency)
            self._detail["captured_minor"] = captured.amount_captured_minor

            async def refund_capture() -> None:
                await call_with_approval(
                    desk,
                    run,
                    tools.stripe.CREATE_REFUND,
                    CreateRefundInput(
                        payment_intent_id=payment_intent,
                        order_id=input.order_id,
                        refund_request_id=f"undo-{input.order_id}"[:64],
                        amount_minor=captured.amount_captured_minor,
                        currency=order.currency,
                    ),
                    step="undo:capture",
                    action="refund_capture",
                    amount_minor=captured.amount_captured_minor,
                    currency=order.currency,
                    notify=notify,
                )

            saga.add("refund_capture", refund_capture)
        elif order.financial_status.upper() != "PAID":
            raise ApplicationError(
                f"order {input.order_id} is {order.financial_status} and has no payment to capture",
                type="PAYMENT_NOT_AUTHORIZED",
                non_retryable=True,
            )
        await self._move(run, input, "paid")

        # Printful: draft (looked up by external id first), then confirm.
        self._checkpoint()
        draft = await kernel_call(
            run,
            tools.printful.CREATE_ORDER,
            CreatePrintfulOrderInput(
                external_id=printful_external_id(input.tenant_id, input.order_id),
                recipient=ship_to,
                items=printful_items(order, input.default_variant_id),
            ),
            step="printful_create",
        )
        result["printful_order_id"] = draft.printful_order_id
        self._detail["printful_order_id"] = draft.printful_order_id
        ref = PrintfulOrderRef(printful_order_id=draft.printful_order_id)

        async def cancel_draft() -> None:
            await kernel_call(
                run,
                tools.printful.CANCEL_ORDER,
                ref,
                step="undo:printful",
            )

        saga.add("cancel_printful_draft", cancel_draft)
        self._checkpoint()
        await kernel_call(
            run,
            tools.printful.CONFIRM_ORDER,
            ref,
            step="printful_confirm",
        )
        saga.clear()  # in production now: nothing is undone automatically from here
        await self._move(run, input, "in_production")

        shipment = await self._await_shipment(input, run, ref)
        result["tracking_number"] = shipment.tracking_number
        self._detail["tracking_number"] = shipment.tracking_number
        await self._move(run, input, "shipped")
        fulfillment = await kernel_call(
            run,
            tools.shopify.CREATE_FULFILLMENT,
            CreateFulfillmentInput(
                order_id=input.order_id,
                tracking_company=shipment.carrier,
                tracking_number=shipment.tracking_number,
                tracking_url=shipment.tracking_url,
            ),
            step="fulfill",
        )
        result["fulfillment_id"] = fulfillment.fulfillment_id
        if customer_emails and order.customer_email:
            sent = await send_email(
                run,
                to=order.customer_email,
                template="shipping_confirmation",
                subject=f"Your order {order.order_name} has shipped",
                step="email_shipped",
                variables={
                    "order_name": order.order_name,
                    "carrier": shipment.carrier,
                    "tracking_number": shipment.tracking_number,
                    "tracking_url": shipment.tracking_url or "",
                },
            )
            result["email_message_id"] = sent.message_id

    def _needs_approval(self, run: RunState, capture: CapturePaymentInput) -> bool:
        decision = preview(run, tools.stripe.CAPTURE_PAYMENT, capture, step="capture")
        return bool(decision.hitl and decision.hitl.required)

    async def _await_shipment(
        self, input: OrderFulfillInput, run: RunState, ref: PrintfulOrderRef
    ) -> ShipmentNotice:
        polls = 0
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._shipment is not None or self._cancel is not None,
                    timeout=input.shipment_wait,
                )
            except TimeoutError:
                if polls >= input.shipment_polls:
                    raise ApplicationError(
                        f"no shipment for {input.order_id} after {polls} polls",
                        type="SHIPMENT_TIMEOUT",
                        non_retryable=True,
                    ) from None
                polls += 1
                current = await kernel_call(
                    run,
                    tools.printful.GET_ORDER,
                    ref,
                    step=f"poll_shipment:{polls}",
                )
                if current.shipments:
                    s: Shipment = current.shipments[0]
                    self._shipment = ShipmentNotice(
                        carrier=s.carrier,
                        tracking_number=s.tracking_number,
                        tracking_url=s.tracking_url,
                    )
            if self._shipment is not None:
                return self._shipment
            self._checkpoint()  # not shipped yet and a cancellation came: stop waiting


def _recipient(order: GetOrderOutput) -> PrintfulRecipient | None:
    a = order.shipping_address
    if a is None:
        return None
    return PrintfulRecipient(
        name=a.name,
        address1=a.address1,
        address2=a.address2,
        city=a.city,
        zip=a.zip,
        country_code=a.country_code,
        state_code=a.state_code,
        email=order.customer_email,
        phone=a.phone,
    )


def _describe(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    kind = getattr(cause, "type", None) or type(cause).__name__
    return f"{kind}: {cause}"
