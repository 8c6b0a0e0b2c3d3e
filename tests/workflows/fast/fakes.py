"""In-memory stand-ins for every activity the workflows schedule, registered under the
real activity names (``contract.activity_name`` for tools, ``autobiz.*`` / ``kernel.*``
for plumbing), as in samples-python's ``test_mock_activity``.

Each fake records its call (``calls``: activity name and input, in order) and answers
from the state a test put in (orders, PaymentIntents, Printful orders, a scope) or with
the failure a test queued (``fail``). No network, no database.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.config_activities import flow_context
from kernel import tools
from kernel.call import PERSIST_TRACE_ACTIVITY, PERSIST_TRACE_WITH_ROW_ACTIVITY, TraceBatch
from kernel.config import BusinessConfig
from kernel.contracts import CallContext, ProjectionWrite
from kernel.decision_proof import ApproverKey, ApproverKeyRegistry
from kernel.tools.printful import (
    CreatePrintfulOrderInput,
    GetPrintfulOrderOutput,
    PrintfulOrderOutput,
    PrintfulOrderRef,
    Shipment,
)
from kernel.tools.risk import RiskInput, RiskOutput
from kernel.tools.sendgrid import SendEmailInput, SendEmailOutput
from kernel.tools.shopify import (
    CancelOrderInput,
    CancelOrderOutput,
    CreateFulfillmentInput,
    CreateFulfillmentOutput,
    GetOrderInput,
    GetOrderOutput,
    ShopifyRefundInput,
    ShopifyRefundOutput,
)
from kernel.tools.stripe import (
    CancelPaymentInput,
    CancelPaymentOutput,
    CapturePaymentInput,
    CapturePaymentOutput,
    CreateRefundInput,
    CreateRefundOutput,
    GetPaymentIntentInput,
    GetPaymentIntentOutput,
    ListRefundsInput,
    ListRefundsOutput,
)
from workflows.common.models import (
    HITL_CLOSE,
    HITL_NOTE,
    HITL_OPEN,
    LOAD_FLOW_CONTEXT,
    ORDER_STATE_READ,
    ORDER_STATE_WRITE,
    FlowContext,
    FlowContextRequest,
    HitlClose,
    HitlNote,
    HitlOpen,
    OrderStateKey,
    OrderStateRow,
    OrderStateWrite,
    OrderStateWritten,
)
from workflows.orders.models import (
    EXCEPTION_SETTINGS,
    ExceptionSettings,
    ExceptionSettingsRequest,
)
from workflows.reconciliation.models import (
    RECONCILE_RECORD,
    RECONCILE_RESOLVE,
    RECONCILE_SCOPE,
    DriftBatch,
    DriftResolve,
    DriftResolved,
    DriftRow,
    DriftRows,
    ReconcileScope,
    ScopeRequest,
)


def refusal(kind: str, message: str = "refused by the fake") -> ApplicationError:
    """A non-retryable provider refusal, as the real activities raise them."""
    return ApplicationError(message, {"code": kind}, type=kind, non_retryable=True)


def shop_order(
    order_id: str, *, total_minor: int, financial_status: str, **details: Any
) -> GetOrderOutput:
    """A USD Shopify order as ``shopify.get_order`` answers, paid by ``pi_<order_id>``;
    ``details``: the other fields (shipping address, line items ...)."""
    return GetOrderOutput(
        order_id=order_id,
        order_name=f"#{order_id}",
        financial_status=financial_status,
        total_minor=total_minor,
        currency="USD",
        payment_intent_id=f"pi_{order_id}",
        customer_email="ada@example.com",
        **details,
    )


def payment_intent(
    pi: str, status: str, *, order_key: str | None = None, decline: str | None = None
) -> GetPaymentIntentOutput:
    """A $25 PaymentIntent as ``stripe.get_payment_intent`` answers in ``status``."""
    return GetPaymentIntentOutput(
        id=pi,
        status=status,
        amount_minor=2500,
        currency="USD",
        amount_received_minor=2500 if status == "succeeded" else 0,
        amount_capturable_minor=2500 if status == "requires_capture" else 0,
        decline_code=decline,
        order_key=order_key,
    )


@dataclass
class Fakes:
    """The providers' and the database's state, as one test sets it up."""

    config: BusinessConfig
    public_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # approver: id, key
    orders: dict[str, GetOrderOutput] = field(default_factory=dict)
    # Each read of a PaymentIntent takes the next answer; the last one stays.
    intents: dict[str, list[GetPaymentIntentOutput]] = field(default_factory=dict)
    printful: dict[str, GetPrintfulOrderOutput] = field(default_factory=dict)  # by external id
    risk: str = "low"
    ship_on_confirm: bool = False  # a confirmed Printful order has shipped at the next read
    refunds: dict[str | None, ListRefundsOutput] = field(default_factory=dict)  # by pi / window
    scope: ReconcileScope = field(default_factory=ReconcileScope)
    fail: dict[str, ApplicationError] = field(default_factory=dict)  # activity name -> error
    calls: list[tuple[str, BaseModel]] = field(default_factory=list)
    opened: list[HitlOpen] = field(default_factory=list)
    closed: list[HitlClose] = field(default_factory=list)
    states: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    rows: dict[int, DriftRow] = field(default_factory=dict)
    _projection: dict[str, OrderStateRow] = field(default_factory=dict)
    _next_id: int = 1000
    # Set: the first approval row write waits for it (a cancel lands while it is written).
    hold_first_open: asyncio.Event | None = None
    _open_event: asyncio.Event = field(default_factory=asyncio.Event)
    _call_event: asyncio.Event = field(default_factory=asyncio.Event)

    # -- what the tests read ---------------------------------------------------------

    def names(self, *, tools_only: bool = True) -> list[str]:
        """Activity names in call order (tools only: ``name@version``)."""
        return [n for n, _ in self.calls if not tools_only or "@" in n]

    def inputs(self, name: str) -> list[Any]:
        return [i for n, i in self.calls if n == name]

    async def opened_request(self, index: int = 0) -> HitlOpen:
        """The ``index``-th approval request opened (waits for it)."""
        while True:
            self._open_event.clear()
            if len(self.opened) > index:
                return self.opened[index]
            await asyncio.wait_for(self._open_event.wait(), timeout=10)

    async def called(self, name: str, times: int = 1) -> None:
        """Wait until ``name`` has been called ``times`` times."""
        while True:
            self._call_event.clear()
            if self.names(tools_only=False).count(name) >= times:
                return
            await asyncio.wait_for(self._call_event.wait(), timeout=10)

    def _call(self, name: str, input: BaseModel) -> None:
        self.calls.append((name, input))
        self._call_event.set()
        error = self.fail.get(name)
        if error is not None:
            raise error

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- tools -----------------------------------------------------------------------

    @activity.defn(name=tools.shopify.GET_ORDER.activity_name)
    async def shopify_get_order(self, _: CallContext, i: GetOrderInput) -> GetOrderOutput:
        self._call(tools.shopify.GET_ORDER.activity_name, i)
        if i.order_id not in self.orders:
            raise refusal("PROVIDER_NOT_FOUND", f"order {i.order_id} not found")
        return self.orders[i.order_id]

    @activity.defn(name=tools.risk.ASSESS.activity_name)
    async def risk_assess(self, _: CallContext, i: RiskInput) -> RiskOutput:
        self._call(tools.risk.ASSESS.activity_name, i)
        return RiskOutput(level=self.risk, score=90 if self.risk == "high" else 10)  # type: ignore[arg-type]

    @activity.defn(name=tools.stripe.CAPTURE_PAYMENT.activity_name)
    async def stripe_capture(self, _: CallContext, i: CapturePaymentInput) -> CapturePaymentOutput:
        self._call(tools.stripe.CAPTURE_PAYMENT.activity_name, i)
        return CapturePaymentOutput(
            payment_intent_id=i.payment_intent_id,
            status="succeeded",
            amount_captured_minor=i.amount_minor,
            currency=i.currency,
        )

    @activity.defn(name=tools.stripe.CANCEL_PAYMENT.activity_name)
    async def stripe_cancel(self, _: CallContext, i: CancelPaymentInput) -> CancelPaymentOutput:
        self._call(tools.stripe.CANCEL_PAYMENT.activity_name, i)
        return CancelPaymentOutput(payment_intent_id=i.payment_intent_id, status="canceled")

    @activity.defn(name=tools.stripe.CREATE_REFUND.activity_name)
    async def stripe_refund(self, _: CallContext, i: CreateRefundInput) -> CreateRefundOutput:
        self._call(tools.stripe.CREATE_REFUND.activity_name, i)
        return CreateRefundOutput(
            refund_id=f"re_{self._id()}",
            status="succeeded",
            amount_minor=i.amount_minor,
            currency=i.currency,
        )

    @activity.defn(name=tools.stripe.GET_PAYMENT_INTENT.activity_name)
    async def stripe_intent(
        self, _: CallContext, i: GetPaymentIntentInput
    ) -> GetPaymentIntentOutput:
        self._call(tools.stripe.GET_PAYMENT_INTENT.activity_name, i)
        answers = self.intents.get(i.payment_intent_id)
        if not answers:
            raise refusal("PROVIDER_NOT_FOUND", f"{i.payment_intent_id} not found")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    @activity.defn(name=tools.stripe.LIST_REFUNDS.activity_name)
    async def stripe_list_refunds(self, _: CallContext, i: ListRefundsInput) -> ListRefundsOutput:
        self._call(tools.stripe.LIST_REFUNDS.activity_name, i)
        return self.refunds.get(i.payment_intent_id, ListRefundsOutput())

    @activity.defn(name=tools.printful.CREATE_ORDER.activity_name)
    async def printful_create(
        self, _: CallContext, i: CreatePrintfulOrderInput
    ) -> PrintfulOrderOutput:
        self._call(tools.printful.CREATE_ORDER.activity_name, i)
        order = GetPrintfulOrderOutput(
            printful_order_id=self._id(), external_id=i.external_id, status="draft"
        )
        self.printful[i.external_id] = order
        return PrintfulOrderOutput(
            printful_order_id=order.printful_order_id, external_id=i.external_id, status="draft"
        )

    def _printful(self, ref: PrintfulOrderRef) -> GetPrintfulOrderOutput:
        for order in self.printful.values():
            if ref.external_id in (None, order.external_id) and ref.printful_order_id in (
                None,
                order.printful_order_id,
            ):
                return order
        raise refusal("PROVIDER_NOT_FOUND", f"Printful order {ref.order_ref} not found")

    def _set_printful(self, order: GetPrintfulOrderOutput, status: str) -> PrintfulOrderOutput:
        moved = order.model_copy(update={"status": status})
        self.printful[str(order.external_id)] = moved
        return PrintfulOrderOutput(
            printful_order_id=moved.printful_order_id,
            external_id=moved.external_id,
            status=status,
        )

    @activity.defn(name=tools.printful.CONFIRM_ORDER.activity_name)
    async def printful_confirm(self, _: CallContext, i: PrintfulOrderRef) -> PrintfulOrderOutput:
        self._call(tools.printful.CONFIRM_ORDER.activity_name, i)
        out = self._set_printful(self._printful(i), "pending")
        if self.ship_on_confirm:
            order = self._printful(i)
            shipped = [Shipment(carrier="DHL", tracking_number="TRK1")]
            self.printful[str(order.external_id)] = order.model_copy(update={"shipments": shipped})
        return out

    @activity.defn(name=tools.printful.CANCEL_ORDER.activity_name)
    async def printful_cancel(self, _: CallContext, i: PrintfulOrderRef) -> PrintfulOrderOutput:
        self._call(tools.printful.CANCEL_ORDER.activity_name, i)
        return self._set_printful(self._printful(i), "canceled")

    @activity.defn(name=tools.printful.GET_ORDER.activity_name)
    async def printful_get(self, _: CallContext, i: PrintfulOrderRef) -> GetPrintfulOrderOutput:
        self._call(tools.printful.GET_ORDER.activity_name, i)
        return self._printful(i)

    @activity.defn(name=tools.shopify.CREATE_FULFILLMENT.activity_name)
    async def shopify_fulfill(
        self, _: CallContext, i: CreateFulfillmentInput
    ) -> CreateFulfillmentOutput:
        self._call(tools.shopify.CREATE_FULFILLMENT.activity_name, i)
        return CreateFulfillmentOutput(fulfillment_id=f"ful_{self._id()}", status="success")

    @activity.defn(name=tools.shopify.REFUND_CREATE.activity_name)
    async def shopify_refund(self, _: CallContext, i: ShopifyRefundInput) -> ShopifyRefundOutput:
        self._call(tools.shopify.REFUND_CREATE.activity_name, i)
        return ShopifyRefundOutput(
            refund_id=f"shr_{self._id()}", amount_minor=i.amount_minor, currency=i.currency
        )

    @activity.defn(name=tools.shopify.CANCEL_ORDER.activity_name)
    async def shopify_cancel(self, _: CallContext, i: CancelOrderInput) -> CancelOrderOutput:
        self._call(tools.shopify.CANCEL_ORDER.activity_name, i)
        return CancelOrderOutput(order_id=i.order_id, status="cancelled")

    @activity.defn(name=tools.sendgrid.SEND_EMAIL.activity_name)
    async def send_email(self, _: CallContext, i: SendEmailInput) -> SendEmailOutput:
        self._call(tools.sendgrid.SEND_EMAIL.activity_name, i)
        return SendEmailOutput(message_id=f"msg_{self._id()}", status="accepted")

    # -- plumbing --------------------------------------------------------------------

    @activity.defn(name=LOAD_FLOW_CONTEXT)
    async def load_flow_context(self, req: FlowContextRequest) -> FlowContext:
        self._call(LOAD_FLOW_CONTEXT, req)
        if req.tenant_id != self.config.tenant:
            raise refusal("TENANT_UNKNOWN", f"no BusinessConfig for tenant {req.tenant_id}")
        return flow_context(self.config, req.workflow_type)

    @activity.defn(name=EXCEPTION_SETTINGS)
    async def exception_settings(self, req: ExceptionSettingsRequest) -> ExceptionSettings:
        self._call(EXCEPTION_SETTINGS, req)
        return ExceptionSettings()

    @activity.defn(name=HITL_OPEN)
    async def hitl_open(self, req: HitlOpen) -> ApproverKeyRegistry:
        self._call(HITL_OPEN, req)
        if self.hold_first_open is not None and self.names(tools_only=False).count(HITL_OPEN) == 1:
            await self.hold_first_open.wait()
        if all(o.request_id != req.request_id for o in self.opened):
            self.opened.append(req)
            self._open_event.set()
        since = datetime.now(UTC) - timedelta(hours=1)
        keys = tuple(
            ApproverKey(approver_id=a, key_id=k, public_key=pub, not_before=since)
            for a, (k, pub) in self.public_keys.items()
        )
        return ApproverKeyRegistry(tenant_id=req.tenant_id, as_of=datetime.now(UTC), keys=keys)

    @activity.defn(name=HITL_NOTE)
    async def hitl_note(self, note: HitlNote) -> None:
        self._call(HITL_NOTE, note)

    @activity.defn(name=HITL_CLOSE)
    async def hitl_close(self, close: HitlClose) -> None:
        self._call(HITL_CLOSE, close)
        self.closed.append(close)

    @activity.defn(name=ORDER_STATE_READ)
    async def order_state_read(self, key: OrderStateKey) -> OrderStateRow:
        self._call(ORDER_STATE_READ, key)
        return self._projection.get(key.order_id, OrderStateRow(version=0, state=""))

    @activity.defn(name=ORDER_STATE_WRITE)
    async def order_state_write(self, write: OrderStateWrite) -> OrderStateWritten:
        self._call(ORDER_STATE_WRITE, write)
        current = self._projection.get(write.order_id, OrderStateRow(version=0, state=""))
        if current.version != write.expected_version:
            raise refusal("ORDER_STATE_CONFLICT", f"order_state {write.order_id} moved")
        version = current.version + 1
        self._projection[write.order_id] = OrderStateRow(
            version=version, state=write.state, data=write.data
        )
        self.states[write.order_id].append(write.state)
        return OrderStateWritten(version=version, applied=True)

    def ride(self, write: ProjectionWrite) -> None:
        """A row that rode with a call or the trace: merged over the row at the next
        version, as ``OrderStateRows.ride_in`` does (not a call: no activity of its own)."""
        current = self._projection.get(write.order_id, OrderStateRow(version=0, state=""))
        self._projection[write.order_id] = OrderStateRow(
            version=current.version + 1,
            state=write.state,
            data={**current.data, **write.data},
        )
        self.states[write.order_id].append(write.state)

    def interceptors(self) -> list[Interceptor]:
        """For ``Worker(interceptors=...)``: rows riding with tool calls reach ``ride``."""
        return [_FakeRiding(self)]

    @activity.defn(name=PERSIST_TRACE_ACTIVITY)
    async def persist_trace(self, batch: TraceBatch) -> int:
        return len(batch.entries)  # not recorded: it says nothing about a branch

    @activity.defn(name=PERSIST_TRACE_WITH_ROW_ACTIVITY)
    async def persist_trace_with_row(self, batch: TraceBatch) -> int:
        assert batch.projection is not None
        self.ride(batch.projection)
        return len(batch.entries)

    @activity.defn(name=RECONCILE_SCOPE)
    async def reconcile_scope(self, req: ScopeRequest) -> ReconcileScope:
        self._call(RECONCILE_SCOPE, req)
        return self.scope

    @activity.defn(name=RECONCILE_RECORD)
    async def reconcile_record(self, batch: DriftBatch) -> DriftRows:
        self._call(RECONCILE_RECORD, batch)
        now = datetime.now(UTC)
        for d in batch.drifts:
            drift_id = self._id()
            self.rows[drift_id] = DriftRow(
                drift_id=drift_id,
                kind=d.kind,
                entity_ref=d.entity_ref,
                order_id=d.order_id,
                financial=d.financial,
                expected=d.expected,
                actual=d.actual,
                action=d.action,
                status="open",
                run_id=batch.run_id,
                last_run_id=batch.run_id,
                detected_at=now,
            )
        return DriftRows(rows=tuple(self.rows.values()))

    @activity.defn(name=RECONCILE_RESOLVE)
    async def reconcile_resolve(self, req: DriftResolve) -> DriftResolved:
        self._call(RECONCILE_RESOLVE, req)
        row = self.rows[req.drift_id]
        if row.status not in req.from_statuses:
            return DriftResolved(row=row, changed=False)
        row = row.model_copy(update={"status": req.status, "action": req.action})
        self.rows[req.drift_id] = row
        return DriftResolved(row=row, changed=True)

    def activities(self) -> list[Callable[..., Any]]:
        """Every fake, for ``Worker(activities=...)``."""
        return [
            getattr(self, name)
            for name in dir(type(self))
            if hasattr(getattr(type(self), name), "__temporal_activity_definition")
        ]


class _FakeRiding(Interceptor):
    """The stand-in for ``autobiz.ledger.riding_projection.RidingProjection``."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        fakes = self.fakes

        class Riding(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                ctx = input.args[0] if input.args else None
                row = ctx.projection if isinstance(ctx, CallContext) else None
                if row is not None and not row.with_result:
                    fakes.ride(row)
                result = await super().execute_activity(input)
                if row is not None and row.with_result:  # once the call succeeded
                    fakes.ride(row)
                return result

        return Riding(next)
