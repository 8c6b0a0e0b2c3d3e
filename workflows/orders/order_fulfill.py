"""WF01 OrderFulfill: a paid (or authorised) Shopify order, printed, shipped and told.

shopify.get_order → risk.assess → [approval when the HITL rule says so] →
stripe.capture_payment (or verify paid) → printful.create_order (external_id = order key)
→ printful.confirm_order → wait for the shipment (``printful_shipment`` signal, or the
ingress's ``printful_event``; polls Printful when the wait times out) →
shopify.create_fulfillment with tracking → sendgrid.send_email.

Compensation: the Printful draft is cancelled and the capture refunded (through the gate,
so a large refund waits for approval) if the flow fails before the order is confirmed;
after confirmation production has started and nothing is undone here.

Fulfilment exceptions (behind ``workflow.patched("fulfillment-exception")``): an
``order_failed`` / ``order_put_hold`` from Printful while the flow waits for the shipment
starts the child FulfillmentException (WF06, one per Printful event) and waits for its
outcome — ``resolved``: back to waiting for the shipment; ``cancelling``: the child
started OrderCancellation, whose ``cancel_requested`` stops this flow as any
cancellation does, once the child has ended (it said ``cancelling`` first);
``contacted`` / ``unresolved``: the order stays ``on_hold`` and the flow keeps waiting
(bounded: the shipment polls end it in SHIPMENT_TIMEOUT), because Printful may still
release it and a later hold is a new exception. ``order_remove_hold`` is forwarded to
the child while it runs. The ``status`` detail shows the exception.

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
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import kernel_call, preview
    from kernel.codes import ErrorCode
    from kernel.tools.defaults import RiskLevel
    from kernel.tools.printful import (
        CreatePrintfulOrderInput,
        PrintfulItem,
        PrintfulOrderRef,
        PrintfulRecipient,
        Shipment,
    )
    from kernel.tools.risk import RiskInput
    from kernel.tools.shopify import CreateFulfillmentInput, GetOrderInput, GetOrderOutput
    from kernel.tools.stripe import CapturePaymentInput, CapturePaymentOutput, CreateRefundInput
    from workflows.common.approvals import ApprovalDenied, Notifier, call_with_approval
    from workflows.common.flow import Saga, approval_notifier, describe, send_email
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.projection import OrderProjection
    from workflows.ids import (
        CANCEL_REQUESTED,
        FULFILL_STOPPED,
        FULFILLMENT_EXCEPTION,
        ORDER_FULFILL,
        PRINTFUL_EVENT,
        SHOPIFY_EVENT,
        STRIPE_EVENT,
        cancellation_workflow_id,
        exception_workflow_id,
        printful_external_id,
    )
    from workflows.orders.facts import Fulfilment
    from workflows.orders.models import (
        EXCEPTION_UPDATE,
        CancelRequest,
        ExceptionUpdate,
        FulfillmentExceptionInput,
        FulfillmentExceptionResult,
        FulfillStopped,
        OrderFulfillInput,
        OrderFulfillResult,
        ShipmentNotice,
    )

SHIPPED_TOPICS = frozenset({"shipment_sent", "package_shipped"})
EXCEPTION_TOPICS = frozenset({"order_failed", "order_put_hold"})
EXCEPTION_PATCH = "fulfillment-exception"
# From this patch on, a cancellation that arrives while the child FulfillmentException
# says ``cancelling`` (it started that cancellation and is about to end) waits for the
# child to end: closing first would cancel it (ParentClosePolicy.REQUEST_CANCEL).
WAITS_FOR_ENDING_CHILD = "fulfill-waits-for-ending-exception"
# From this patch on, the bookkeeping is lean: the order's row rides with the tool call
# that follows a move (and the last one with the trace) instead of an
# ``autobiz.order_state_write`` of its own, and search attributes the start set already
# are not upserted again (one patch: each patch id costs a run one upsert of its own).
LEAN_BOOKKEEPING = "bookkeeping-rides-with-calls"
# From this patch on (with the one above), the ``in_production`` row goes with the
# Printful confirm (written with its result, in the call's finish transaction) instead
# of by an ``autobiz.order_state_write`` of its own, and the trace with the last row is
# written by a local activity in the task that ends the run: two activity tasks and two
# workflow tasks fewer per order (one patch id: each costs a run an upsert).
WITH_RESULTS = "bookkeeping-with-results"
# The baseline: a run started from here on takes every patch above (and
# ``flow-context-from-worker``) under this one id, asked at the start, instead of
# asking each (four markers and four ``TemporalChangeVersion`` upserts an order become
# one and one); its context load and ``risk.assess`` run as local activities, inside
# the workflow task, where nothing else of the run schedules work beside them, and
# ``assessing`` (left in the same task) is traced but not upserted as FlowState. The
# next change adds its own id; the one after may fold both into ``-2``.
BASELINE = "order-fulfill-baseline-1"
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
class OrderFulfill(ApprovalFlow):
    def __init__(self) -> None:
        super().__init__()
        self._order_id = ""
        self._facts = Fulfilment()
        self._saga = Saga()
        self._shipment: ShipmentNotice | None = None
        self._projection: OrderProjection | None = None
        self._cancel: CancelRequest | None = None
        self._stopped = False  # the flow ends by a cancellation (told to the canceller)
        self._stopped_in: str | None = None  # ... stopped by the cancellation flow, here
        self._exceptions_on = False  # the patch: Printful holds/failures are handled
        self._exception_events: list[dict[str, Any]] = []  # holds/failures not handled yet
        self._exception_ids: set[str] = set()
        self._exception_retries = 0  # re-submissions of transient failures so far
        self._forward: list[dict[str, Any]] = []  # order_remove_hold for the running child
        self._child_running = False

    # -- handlers ---------------------------------------------------------------------

    @workflow.signal(name="printful_shipment")
    def printful_shipment(self, notice: ShipmentNotice) -> None:
        if self._shipment is None:
            self._shipment = notice

    @workflow.signal(name=PRINTFUL_EVENT)
    def printful_event(self, envelope: dict[str, Any]) -> None:
        """The ingress's envelope (``ingress.handoff.EventEnvelope`` as JSON)."""
        topic = envelope.get("topic")
        if topic in EXCEPTION_TOPICS:
            key = str(envelope.get("provider_event_id") or envelope.get("dedup_id") or "")
            if key and key not in self._exception_ids:
                self._exception_ids.add(key)
                self._exception_events.append(envelope)
            return
        if topic == "order_remove_hold":
            if self._child_running:
                self._forward.append(envelope)
            return
        if topic not in SHIPPED_TOPICS or self._shipment is not None:
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

    @workflow.signal(name=EXCEPTION_UPDATE)
    def exception_update(self, update: ExceptionUpdate) -> None:
        """The running FulfillmentException's state and diagnosis, for the status query."""
        current = self._facts.exception
        if current is not None and current.get("workflow_id") == update.workflow_id:
            shown = update.model_dump(exclude_none=True, exclude={"workflow_id"})
            self._facts.exception = {**current, **shown}

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
        self._facts.stripe_events.append(str(envelope.get("topic")))

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderFulfillInput) -> OrderFulfillResult:
        self._order_id = input.order_id
        context = await self._begin(ORDER_FULFILL, input, order_id=input.order_id)
        try:
            await self._fulfil(input, context.customer_emails)
        except CancelRequested:
            await self._stop()
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except (ActivityError, ApplicationError, ApprovalDenied) as exc:
            await self._failed(exc)
        else:
            await self._end("completed")
        return self._result()

    async def _fulfil(self, input: OrderFulfillInput, customer_emails: bool) -> None:
        notify = approval_notifier(self._kernel)
        order = await self._read_order(input.order_id)
        ship_to = input.ship_to or recipient_of(order)
        if ship_to is None:
            raise ApplicationError(
                f"order {input.order_id} has no shipping address",
                type=ErrorCode.NO_SHIPPING_ADDRESS,
                non_retryable=True,
            )
        # On the baseline the risk read is local: the run leaves "assessing" in this
        # task, so its FlowState upsert would be replaced before anyone saw it.
        await self._move("assessing", rides=True, indexed=not self._on_baseline())
        risk = await self._assess_risk(input.order_id, order, ship_to)
        await self._take_payment(input, order, risk, notify)
        await self._move("paid", rides=True)
        ref = await self._send_to_print(input, order, ship_to)
        await self._move("in_production")
        shipment = await self._await_shipment(input, ref)
        await self._move("shipped", rides=True)
        await self._record_fulfilment(input.order_id, shipment)
        if customer_emails and order.customer_email:
            await self._tell_customer(order, shipment)

    # -- the steps --------------------------------------------------------------------

    async def _read_order(self, order_id: str) -> GetOrderOutput:
        order = await kernel_call(
            self._kernel,
            tools.shopify.GET_ORDER,
            GetOrderInput(order_id=order_id),
            step="get_order",
        )
        self._facts.order_name = order.order_name
        self._facts.total_minor, self._facts.currency = order.total_minor, order.currency
        return order

    async def _assess_risk(
        self, order_id: str, order: GetOrderOutput, ship_to: PrintfulRecipient
    ) -> RiskLevel:
        risk = await kernel_call(
            self._kernel,
            tools.risk.ASSESS,
            RiskInput(
                order_id=order_id,
                amount_minor=order.total_minor,
                currency=order.currency,
                country_code=ship_to.country_code,
            ),
            step="risk",
            local=self._on_baseline(),  # right after the order is read: nothing else runs
        )
        self._facts.risk = risk.level
        return risk.level

    async def _take_payment(
        self, input: OrderFulfillInput, order: GetOrderOutput, risk: RiskLevel, notify: Notifier
    ) -> None:
        """Capture the authorisation (approval first when the rule says so); an order
        without one must already be paid. Undo: refund the capture."""
        payment_intent = input.payment_intent or order.payment_intent_id
        if payment_intent is None:
            if order.financial_status.upper() != "PAID":
                raise ApplicationError(
                    f"order {input.order_id} is {order.financial_status} and has no payment "
                    "to capture",
                    type=ErrorCode.PAYMENT_NOT_AUTHORIZED,
                    non_retryable=True,
                )
            return
        self._checkpoint()
        await self._move("capturing", rides=True)  # unless an approval is asked for next
        capture = CapturePaymentInput(
            payment_intent_id=payment_intent,
            order_id=input.order_id,
            amount_minor=order.total_minor,
            currency=order.currency,
            risk_level=risk,
        )
        if self._needs_approval(capture):
            await self._move("awaiting_approval")
        captured = await call_with_approval(
            self._approvals,
            self._kernel,
            tools.stripe.CAPTURE_PAYMENT,
            capture,
            step="capture",
            action="capture_payment",
            amount_minor=order.total_minor,
            currency=order.currency,
            notify=notify,
        )
        self._facts.captured_minor = captured.amount_captured_minor
        self._saga.add("refund_capture", lambda: self._refund_capture(capture, captured, notify))

    async def _refund_capture(
        self, capture: CapturePaymentInput, captured: CapturePaymentOutput, notify: Notifier
    ) -> None:
        """The undo of ``_take_payment`` (through the gate: a large refund is approved)."""
        await call_with_approval(
            self._approvals,
            self._kernel,
            tools.stripe.CREATE_REFUND,
            CreateRefundInput(
                payment_intent_id=capture.payment_intent_id,
                order_id=capture.order_id,
                refund_request_id=f"undo-{capture.order_id}"[:64],
                amount_minor=captured.amount_captured_minor,
                currency=capture.currency,
            ),
            step="undo:capture",
            action="refund_capture",
            amount_minor=captured.amount_captured_minor,
            currency=capture.currency,
            notify=notify,
        )

    async def _send_to_print(
        self, input: OrderFulfillInput, order: GetOrderOutput, ship_to: PrintfulRecipient
    ) -> PrintfulOrderRef:
        """A Printful draft (found by external id if it exists), then confirmed. Undo of
        the draft: cancel it; once confirmed it is in production and nothing is undone."""
        self._checkpoint()
        draft = await kernel_call(
            self._kernel,
            tools.printful.CREATE_ORDER,
            CreatePrintfulOrderInput(
                external_id=printful_external_id(input.tenant_id, input.order_id),
                recipient=ship_to,
                items=printful_items(order, input.default_variant_id),
            ),
            step="printful_create",
        )
        self._facts.printful_order_id = draft.printful_order_id
        ref = PrintfulOrderRef(printful_order_id=draft.printful_order_id)
        self._saga.add("cancel_printful_draft", lambda: self._cancel_draft(ref))
        self._checkpoint()
        self._row_with_result("in_production")
        await kernel_call(self._kernel, tools.printful.CONFIRM_ORDER, ref, step="printful_confirm")
        self._saga.clear()  # the point of no return
        return ref

    async def _cancel_draft(self, ref: PrintfulOrderRef) -> None:
        await kernel_call(self._kernel, tools.printful.CANCEL_ORDER, ref, step="undo:printful")

    async def _await_shipment(
        self, input: OrderFulfillInput, ref: PrintfulOrderRef
    ) -> ShipmentNotice:
        """The shipment signal, or Printful polled each time the wait runs out; a Printful
        hold or failure meanwhile is handed to a FulfillmentException (patched)."""
        self._exceptions_on = self._on_baseline() or workflow.patched(EXCEPTION_PATCH)
        polls = 0
        while True:
            if not await self._wait_for_shipment(input):
                if polls >= input.shipment_polls:
                    raise ApplicationError(
                        f"no shipment for {input.order_id} after {polls} polls",
                        type=ErrorCode.SHIPMENT_TIMEOUT,
                        non_retryable=True,
                    )
                polls += 1
                await self._poll_shipment(ref, polls)
            if self._shipment is not None:
                break
            self._checkpoint()  # not shipped yet and a cancellation came: stop waiting
            if self._exceptions_on and self._exception_events:
                await self._handle_exception(input, ref)
        self._facts.tracking_number = self._shipment.tracking_number
        return self._shipment

    async def _wait_for_shipment(self, input: OrderFulfillInput) -> bool:
        try:
            await workflow.wait_condition(
                lambda: (
                    self._shipment is not None
                    or self._cancel is not None
                    or (self._exceptions_on and bool(self._exception_events))
                ),
                timeout=input.shipment_wait,
            )
        except TimeoutError:
            return False
        return True

    async def _handle_exception(self, input: OrderFulfillInput, ref: PrintfulOrderRef) -> None:
        """One Printful hold or failure: the child FulfillmentException triages it and
        fixes or escalates it; this flow acts on its outcome (see the module docstring)."""
        envelope = self._exception_events.pop(0)
        payload = envelope.get("payload")
        data = (payload.get("data") if isinstance(payload, dict) else None) or {}
        topic = str(envelope.get("topic"))
        event_id = str(envelope.get("provider_event_id") or envelope.get("dedup_id"))
        child_id = exception_workflow_id(self._tenant, self._order_id, event_id)
        assert ref.printful_order_id is not None
        await self._move("exception")
        self._facts.exception = {"workflow_id": child_id, "topic": topic, "state": "started"}
        try:
            child = await workflow.start_child_workflow(
                FULFILLMENT_EXCEPTION.type,
                FulfillmentExceptionInput(
                    tenant_id=self._tenant,
                    order_id=self._order_id,
                    printful_order_id=ref.printful_order_id,
                    event_id=event_id[:128],
                    topic="order_failed" if topic == "order_failed" else "order_put_hold",
                    reason=str(data.get("reason") or "")[:1000],
                    retries_done=self._exception_retries,
                    payment_intent_id=input.payment_intent,
                ),
                id=child_id,
                task_queue=workflow.info().task_queue,
                result_type=FulfillmentExceptionResult,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            )
        except WorkflowAlreadyStartedError:
            self._kernel.decision(workflow.now(), "exception_running", {"note": child_id})
            await self._move("in_production")
            return
        outcome = await self._exception_outcome(child)
        self._facts.exception = {**self._facts.exception, "state": outcome}
        self._kernel.decision(
            workflow.now(), "exception_outcome", {"note": child_id, "state": outcome}
        )
        if outcome == "resolved":
            await self._move("in_production")
        elif outcome != "cancelling":
            await self._move("on_hold")  # still Printful's to release; the wait goes on

    async def _exception_outcome(self, child: Any) -> str:
        """The child's outcome (forwarding ``order_remove_hold`` to it meanwhile); a
        cancellation that comes first stops this flow (the child is cancelled with it),
        unless the child said ``cancelling``: then the child ends first."""
        self._child_running = True
        try:
            while True:
                await workflow.wait_condition(
                    lambda: child.done() or self._cancel is not None or bool(self._forward)
                )
                while self._forward:
                    try:
                        await child.signal(PRINTFUL_EVENT, self._forward.pop(0))
                    except FailureError as exc:
                        workflow.logger.warning("exception flow not told: %s", exc)
                if child.done():
                    break
                if self._cancel is not None and self._child_ending():
                    await workflow.wait_condition(child.done)
                    break
                self._checkpoint()
        finally:
            self._child_running = False
        try:
            result: FulfillmentExceptionResult = child.result()
        except ChildWorkflowError as exc:
            self._kernel.decision(workflow.now(), "exception_failed", {"message": describe(exc)})
            return "unresolved"
        if result.retried:
            self._exception_retries += 1
        if result.diagnosis is not None:
            self._facts.exception = {
                **(self._facts.exception or {}),
                "cause": result.diagnosis.cause,
                "recommended": result.diagnosis.recommended,
                "summary": result.diagnosis.summary,
            }
        if result.choice is not None:
            self._facts.exception = {**(self._facts.exception or {}), "choice": result.choice}
        return result.state

    def _child_ending(self) -> bool:
        """The running child said ``cancelling``: the cancellation that stops this flow is
        its own, and it ends without waiting for anything (patched, asked only then)."""
        shown = self._facts.exception or {}
        return shown.get("state") == "cancelling" and (
            self._on_baseline() or workflow.patched(WAITS_FOR_ENDING_CHILD)
        )

    async def _poll_shipment(self, ref: PrintfulOrderRef, polls: int) -> None:
        current = await kernel_call(
            self._kernel, tools.printful.GET_ORDER, ref, step=f"poll_shipment:{polls}"
        )
        if current.shipments:
            s: Shipment = current.shipments[0]
            self._shipment = ShipmentNotice(
                carrier=s.carrier, tracking_number=s.tracking_number, tracking_url=s.tracking_url
            )

    async def _record_fulfilment(self, order_id: str, shipment: ShipmentNotice) -> None:
        fulfillment = await kernel_call(
            self._kernel,
            tools.shopify.CREATE_FULFILLMENT,
            CreateFulfillmentInput(
                order_id=order_id,
                tracking_company=shipment.carrier,
                tracking_number=shipment.tracking_number,
                tracking_url=shipment.tracking_url,
            ),
            step="fulfill",
        )
        self._facts.fulfillment_id = fulfillment.fulfillment_id

    async def _tell_customer(self, order: GetOrderOutput, shipment: ShipmentNotice) -> None:
        assert order.customer_email is not None
        sent = await send_email(
            self._kernel,
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
        self._facts.email_message_id = sent.message_id

    def _needs_approval(self, capture: CapturePaymentInput) -> bool:
        decision = preview(self._kernel, tools.stripe.CAPTURE_PAYMENT, capture, step="capture")
        return bool(decision.hitl and decision.hitl.required)

    def _checkpoint(self) -> None:
        """Before each side effect: stop here if a cancellation was requested."""
        if self._cancel is not None:
            raise CancelRequested

    # -- how the flow ends otherwise --------------------------------------------------

    async def _failed(self, exc: ActivityError | ApplicationError | ApprovalDenied) -> None:
        """Undo what the saga holds, end ``failed`` (or ``rejected`` by an approver), and
        raise again unless an approver denied it. A cancellation that came first wins."""
        if self._cancel is not None:
            return await self._stop()  # the cancellation flow owns the order now
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            await self._cancelled()  # cancelled during an activity
            raise exc
        self._error = describe(exc)
        await self._compensate()
        denied = isinstance(exc, ApprovalDenied)
        await self._end("rejected" if denied else "failed")
        if not isinstance(exc, ApprovalDenied):
            raise exc
        if exc.view.status != "denied":
            raise ApplicationError(
                f"approval {exc.view.request_id} expired: failed closed",
                type=ErrorCode.APPROVAL_EXPIRED,
                non_retryable=True,
            ) from None

    async def _cancelled(self) -> None:
        """Cancelled from the Temporal side (`temporal workflow cancel`, the Web UI): undo
        what the saga holds (refund the capture, cancel the draft) and record it; the
        caller re-raises, so the run ends CANCELLED."""
        self._kernel.decision(workflow.now(), "workflow_cancelled", {"stopped_in": self._state})
        await self._compensate()
        self._stopped = True
        await self._end("cancelled")

    async def _stop(self) -> None:
        """Cancelled by the order's cancellation flow: end here, undo nothing, tell it."""
        request = self._cancel
        assert request is not None
        stopped_in = self._state
        self._kernel.decision(
            workflow.now(),
            "cancel_requested",
            {
                "requested_by": request.requested_by,
                "reason": request.reason,
                "stopped_in": stopped_in,
            },
        )
        self._facts.cancelled_in = self._stopped_in = stopped_in
        self._stopped = True
        await self._end("cancelled")

    async def _compensate(self) -> None:
        await self._saga.compensate(self._kernel)
        self._facts.compensated = self._saga.done

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    def _on_baseline(self) -> bool:
        return workflow.patched(BASELINE)

    def _lean_bookkeeping(self) -> bool:
        return self._on_baseline() or workflow.patched(LEAN_BOOKKEEPING)

    async def _project(self, state: str, previous: str, *, rides: bool = False) -> None:
        """The order's row on each move. From the patches on, a move with a tool call
        (or the end) straight after lets the row ride with it, and ``in_production``
        goes with the confirm's result (``_row_with_result``): none of an order's six
        writes costs an activity of its own; ``awaiting_approval`` (a wait follows) is
        written at once."""
        projection = self._order_row()
        if projection.went_with_call(state):
            return
        data = {"workflow_id": workflow.info().workflow_id, **self._facts.shown()}
        if rides and self._lean_bookkeeping():
            if projection.ride(self._kernel, state, data):
                return
        await projection.write(state, data, run=self._kernel)

    def _row_with_result(self, state: str) -> None:
        """The row of ``state``, the move that follows the next call's success, goes
        with that call (patched): the worker writes it with the call's result, and the
        move costs no activity of its own."""
        if self._with_results():
            data = {"workflow_id": workflow.info().workflow_id, **self._facts.shown()}
            self._order_row().ride(self._kernel, state, data, with_result=True)

    def _with_results(self) -> bool:
        return self._on_baseline() or (self._lean_bookkeeping() and workflow.patched(WITH_RESULTS))

    def _trace_in_last_task(self) -> bool:
        return self._with_results()

    def _order_row(self) -> OrderProjection:
        if self._projection is None:
            # The flow that starts an order's row; another flow of the order (a payment
            # failure that recovered) may have written it first: read on conflict.
            self._projection = OrderProjection(self._tenant, self._order_id, read_first=False)
        return self._projection

    async def _on_end(self) -> None:
        """Answer a cancellation request (if one came) with ``fulfill_stopped``; a
        cancellation flow that is not running (a request sent by hand) is not an error."""
        if self._cancel is None:
            return
        answer = FulfillStopped(
            workflow_id=workflow.info().workflow_id,
            stopped=self._stopped,
            state=self._stopped_in or self._state,
        )
        target = cancellation_workflow_id(self._tenant, self._order_id)
        try:
            await workflow.get_external_workflow_handle(target).signal(FULFILL_STOPPED, answer)
        except FailureError as exc:
            workflow.logger.warning("cancellation flow %s not told: %s", target, exc)

    def _result(self) -> OrderFulfillResult:
        f = self._facts
        return OrderFulfillResult(
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            captured_minor=f.captured_minor or 0,
            currency=f.currency if f.captured_minor is not None else None,
            printful_order_id=f.printful_order_id,
            fulfillment_id=f.fulfillment_id,
            tracking_number=f.tracking_number,
            email_message_id=f.email_message_id,
            cost_micros=self._kernel.cost_micros,
        )


def recipient_of(order: GetOrderOutput) -> PrintfulRecipient | None:
    """Shopify's shipping address as Printful takes it (None: the order has none)."""
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
