"""The order-to-cash tools the workflows call (their activities come in a later issue).

Money is always integer minor units plus an ISO 4217 currency code. Inputs carry the
ids an activity needs to look up existing provider objects before it writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from kernel.contracts import HitlMode, RetrySpec, SideEffect, ToolContract, ToolModel
from kernel.registry import ToolRegistry

Currency = str
CURRENCY = Field(pattern=r"^[A-Z]{3}$")
RiskLevel = Literal["low", "medium", "high"]

_FAST = timedelta(seconds=15)
_WRITE = timedelta(seconds=30)
_MONEY_RETRY = RetrySpec(initial_interval_s=2.0, max_interval_s=120.0, max_attempts=8)
# Reads of an object we were just told exists: a not-found on the first _GRACE attempts
# is "not there yet" (a lagging read replica), retried after 1, 2, 4, 8 s; the fifth
# not-found is decisive. Attempts left over still absorb 5xx/429/timeouts.
_READ_RETRY = RetrySpec(initial_interval_s=1.0, max_interval_s=30.0, max_attempts=6)
_GRACE = 4


# --- Shopify -------------------------------------------------------------------------


class GetOrderInput(ToolModel):
    order_id: str = Field(min_length=1, max_length=64)


class LineItem(ToolModel):
    sku: str
    quantity: int = Field(ge=1)
    variant_id: str | None = None
    unit_price_minor: int = Field(ge=0)


class ShippingAddress(ToolModel):
    name: str
    address1: str
    address2: str | None = None
    city: str
    zip: str
    country_code: str = Field(pattern=r"^[A-Z]{2}$")
    state_code: str | None = None
    phone: str | None = None


class GetOrderOutput(ToolModel):
    order_id: str
    order_name: str
    financial_status: str
    fulfillment_status: str | None = None
    total_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    payment_intent_id: str | None = None
    customer_email: str | None = None
    shipping_address: ShippingAddress | None = None
    line_items: list[LineItem] = Field(default_factory=list)


class CreateFulfillmentInput(ToolModel):
    order_id: str
    tracking_company: str
    tracking_number: str
    tracking_url: str | None = None
    notify_customer: bool = True


class CreateFulfillmentOutput(ToolModel):
    fulfillment_id: str
    status: str


class ShopifyRefundInput(ToolModel):
    order_id: str
    refund_request_id: str
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    note: str | None = Field(default=None, max_length=500)
    notify_customer: bool = True


class ShopifyRefundOutput(ToolModel):
    refund_id: str
    amount_minor: int
    currency: Currency = CURRENCY


class CancelOrderInput(ToolModel):
    order_id: str
    reason: Literal["CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"] = "CUSTOMER"
    restock: bool = True
    notify_customer: bool = True


class CancelOrderOutput(ToolModel):
    order_id: str
    status: str


# --- Risk ----------------------------------------------------------------------------


class RiskInput(ToolModel):
    order_id: str
    amount_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class RiskOutput(ToolModel):
    level: RiskLevel
    score: int = Field(ge=0, le=100)
    reasons: list[str] = Field(default_factory=list)


# --- Stripe --------------------------------------------------------------------------


class CapturePaymentInput(ToolModel):
    payment_intent_id: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$")
    order_id: str
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    risk_level: RiskLevel = "low"


class CapturePaymentOutput(ToolModel):
    payment_intent_id: str
    status: str
    amount_captured_minor: int
    currency: Currency = CURRENCY


class CancelPaymentInput(ToolModel):
    payment_intent_id: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$")
    order_id: str
    amount_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    reason: Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"] = (
        "requested_by_customer"
    )


class CancelPaymentOutput(ToolModel):
    payment_intent_id: str
    status: str


class GetPaymentIntentInput(ToolModel):
    payment_intent_id: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$")
    order_id: str | None = Field(default=None, max_length=64)


class GetPaymentIntentOutput(ToolModel):
    """A PaymentIntent as the flows see it; ``failure_message`` is redacted and short."""

    id: str
    status: str
    amount_minor: int = Field(ge=0)
    amount_received_minor: int = Field(ge=0)
    amount_capturable_minor: int = Field(ge=0)
    # Refunded so far on the latest charge (0 when nothing was captured).
    amount_refunded_minor: int = Field(default=0, ge=0)
    currency: Currency = CURRENCY
    decline_code: str | None = None
    failure_code: str | None = None
    failure_message: str | None = Field(default=None, max_length=300)
    order_key: str | None = None  # metadata["order_key"]: ``{tenant}:{order id}``


class CreateRefundInput(ToolModel):
    payment_intent_id: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$")
    order_id: str
    refund_request_id: str
    amount_minor: int = Field(gt=0)
    currency: Currency = CURRENCY
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] = "requested_by_customer"


class CreateRefundOutput(ToolModel):
    refund_id: str
    status: str
    amount_minor: int
    currency: Currency = CURRENCY


class ListRefundsInput(ToolModel):
    """Refunds of one PaymentIntent and/or created in a range (epoch seconds, inclusive),
    newest first, at most ``max_results`` (the output says when more were left out)."""

    payment_intent_id: str | None = Field(default=None, pattern=r"^pi_[A-Za-z0-9_]+$")
    created_gte: int | None = Field(default=None, ge=0)
    created_lte: int | None = Field(default=None, ge=0)
    max_results: int = Field(default=100, ge=1, le=1000)


class RefundView(ToolModel):
    refund_id: str
    payment_intent_id: str | None = None
    amount_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    status: str
    reason: str | None = None
    created: int
    # From the refund's metadata: set by AutoBiz's own refunds, absent on refunds made
    # elsewhere (the dashboard, another integration).
    order_id: str | None = None
    refund_request_id: str | None = None


class ListRefundsOutput(ToolModel):
    refunds: list[RefundView] = Field(default_factory=list)
    truncated: bool = False


# --- Printful ------------------------------------------------------------------------


class PrintfulItem(ToolModel):
    catalog_variant_id: int = Field(gt=0)
    quantity: int = Field(ge=1)
    file_url: str | None = None


class PrintfulRecipient(ToolModel):
    name: str
    address1: str
    address2: str | None = None
    city: str
    zip: str
    country_code: str = Field(pattern=r"^[A-Z]{2}$")
    state_code: str | None = None
    email: str | None = None
    phone: str | None = None


class CreatePrintfulOrderInput(ToolModel):
    external_id: str = Field(min_length=1, max_length=32)
    recipient: PrintfulRecipient
    items: list[PrintfulItem] = Field(min_length=1)


class PrintfulOrderOutput(ToolModel):
    printful_order_id: int
    external_id: str | None = None
    status: str
    costs_minor: int | None = None
    currency: Currency | None = None


class PrintfulOrderRef(ToolModel):
    """A Printful order by its id, or by our external id (Printful v2 accepts
    ``@{external_id}`` wherever it takes an order id). Exactly one of the two."""

    printful_order_id: int | None = Field(default=None, gt=0)
    external_id: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _exactly_one(self) -> PrintfulOrderRef:
        if (self.printful_order_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of printful_order_id and external_id")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_key(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The absent key is left out, so a call by id hashes (idempotency keys, loop
        # fingerprints) exactly as before the external id existed.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}

    @property
    def may_be_absent(self) -> bool:
        """By external id it is a lookup ("is there one for this order?"): no grace."""
        return self.external_id is not None

    @property
    def order_ref(self) -> int | str:
        """What goes in Printful's URL: the id, or ``@{external_id}``."""
        if self.printful_order_id is not None:
            return self.printful_order_id
        return f"@{self.external_id}"


class Shipment(ToolModel):
    carrier: str
    tracking_number: str
    tracking_url: str | None = None


class GetPrintfulOrderOutput(ToolModel):
    printful_order_id: int
    external_id: str | None = None
    status: str
    shipments: list[Shipment] = Field(default_factory=list)


# --- SendGrid ------------------------------------------------------------------------


class SendEmailInput(ToolModel):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    template: str = Field(pattern=r"^[a-z0-9_]+$")
    subject: str = Field(max_length=200)
    variables: dict[str, str] = Field(default_factory=dict)
    category: str = "transactional"


class SendEmailOutput(ToolModel):
    message_id: str
    status: str


# --- LLM -----------------------------------------------------------------------------


class CompleteInput(ToolModel):
    model: str
    prompt_id: str
    prompt_version: str
    variables: dict[str, str] = Field(default_factory=dict)
    max_tokens: int = Field(gt=0, le=8192)


class CompleteOutput(ToolModel):
    text: str
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    finish_reason: str = "stop"


# --- Contracts -----------------------------------------------------------------------

SHOPIFY_GET_ORDER = ToolContract(
    name="shopify.get_order",
    version="1",
    description="Read an order from Shopify.",
    input_model=GetOrderInput,
    output_model=GetOrderOutput,
    side_effect=SideEffect.READ,
    provider="shopify",
    scopes=frozenset({"orders:read"}),
    timeout=_FAST,
    retry=_READ_RETRY,
    not_found_grace=_GRACE,
    trace_fields=frozenset(
        {
            "order_id",
            "order_name",
            "financial_status",
            "fulfillment_status",
            "total_minor",
            "currency",
        }
    ),
)
RISK_ASSESS = ToolContract(
    name="risk.assess",
    version="1",
    description="Score an order's fraud risk.",
    input_model=RiskInput,
    output_model=RiskOutput,
    side_effect=SideEffect.READ,
    provider="internal",
    scopes=frozenset({"risk:read"}),
    timeout=_FAST,
    trace_fields=frozenset({"order_id", "amount_minor", "currency", "level", "score"}),
)
STRIPE_CAPTURE_PAYMENT = ToolContract(
    name="stripe.capture_payment",
    version="1",
    description="Capture an authorised PaymentIntent.",
    input_model=CapturePaymentInput,
    output_model=CapturePaymentOutput,
    side_effect=SideEffect.FINANCIAL,
    provider="stripe",
    scopes=frozenset({"payments:capture"}),
    timeout=_WRITE,
    retry=_MONEY_RETRY,
    default_hitl=HitlMode.ALWAYS,
    trace_fields=frozenset(
        {
            "payment_intent_id",
            "order_id",
            "amount_minor",
            "currency",
            "risk_level",
            "status",
            "amount_captured_minor",
        }
    ),
)
STRIPE_CANCEL_PAYMENT = ToolContract(
    name="stripe.cancel_payment",
    version="1",
    description="Void an uncaptured PaymentIntent.",
    input_model=CancelPaymentInput,
    output_model=CancelPaymentOutput,
    side_effect=SideEffect.FINANCIAL,
    provider="stripe",
    scopes=frozenset({"payments:void"}),
    timeout=_WRITE,
    retry=_MONEY_RETRY,
    default_hitl=HitlMode.ALWAYS,
    trace_fields=frozenset(
        {"payment_intent_id", "order_id", "amount_minor", "currency", "reason", "status"}
    ),
)
STRIPE_GET_PAYMENT_INTENT = ToolContract(
    name="stripe.get_payment_intent",
    version="1",
    description="Read a PaymentIntent: status, amounts, last decline, order key.",
    input_model=GetPaymentIntentInput,
    output_model=GetPaymentIntentOutput,
    side_effect=SideEffect.READ,
    provider="stripe",
    scopes=frozenset({"payments:read"}),
    timeout=_FAST,
    retry=_READ_RETRY,
    not_found_grace=_GRACE,
    trace_fields=frozenset(
        {
            "payment_intent_id",
            "order_id",
            "id",
            "status",
            "amount_minor",
            "amount_received_minor",
            "amount_capturable_minor",
            "amount_refunded_minor",
            "currency",
            "decline_code",
            "failure_code",
            "order_key",
        }
    ),
)
STRIPE_LIST_REFUNDS = ToolContract(
    name="stripe.list_refunds",
    version="1",
    description="List refunds of a PaymentIntent or created in a time range (reconciliation).",
    input_model=ListRefundsInput,
    output_model=ListRefundsOutput,
    side_effect=SideEffect.READ,
    provider="stripe",
    scopes=frozenset({"payments:read"}),
    timeout=_WRITE,
    trace_fields=frozenset(
        {"payment_intent_id", "created_gte", "created_lte", "max_results", "truncated"}
    ),
)
STRIPE_CREATE_REFUND = ToolContract(
    name="stripe.create_refund",
    version="1",
    description="Refund (part of) a captured payment.",
    input_model=CreateRefundInput,
    output_model=CreateRefundOutput,
    side_effect=SideEffect.FINANCIAL,
    provider="stripe",
    scopes=frozenset({"payments:refund"}),
    timeout=_WRITE,
    retry=_MONEY_RETRY,
    default_hitl=HitlMode.ALWAYS,
    trace_fields=frozenset(
        {
            "payment_intent_id",
            "order_id",
            "refund_request_id",
            "amount_minor",
            "currency",
            "reason",
            "refund_id",
            "status",
        }
    ),
)
PRINTFUL_CREATE_ORDER = ToolContract(
    name="printful.create_order",
    version="1",
    description="Create a Printful draft order (looked up by @external_id first).",
    input_model=CreatePrintfulOrderInput,
    output_model=PrintfulOrderOutput,
    side_effect=SideEffect.WRITE,
    provider="printful",
    scopes=frozenset({"fulfillment:write"}),
    timeout=_WRITE,
    trace_fields=frozenset(
        {"external_id", "printful_order_id", "status", "costs_minor", "currency"}
    ),
)
PRINTFUL_CONFIRM_ORDER = ToolContract(
    name="printful.confirm_order",
    version="1",
    description="Confirm a Printful draft order.",
    input_model=PrintfulOrderRef,
    output_model=PrintfulOrderOutput,
    side_effect=SideEffect.WRITE,
    provider="printful",
    scopes=frozenset({"fulfillment:write"}),
    timeout=_WRITE,
    trace_fields=frozenset({"printful_order_id", "status"}),
)
PRINTFUL_CANCEL_ORDER = ToolContract(
    name="printful.cancel_order",
    version="1",
    description="Cancel a Printful order.",
    input_model=PrintfulOrderRef,
    output_model=PrintfulOrderOutput,
    side_effect=SideEffect.WRITE,
    provider="printful",
    scopes=frozenset({"fulfillment:cancel"}),
    timeout=_WRITE,
    trace_fields=frozenset({"printful_order_id", "status"}),
)
PRINTFUL_GET_ORDER = ToolContract(
    name="printful.get_order",
    version="1",
    description="Read a Printful order and shipments.",
    input_model=PrintfulOrderRef,
    output_model=GetPrintfulOrderOutput,
    side_effect=SideEffect.READ,
    provider="printful",
    scopes=frozenset({"fulfillment:read"}),
    timeout=_FAST,
    retry=_READ_RETRY,
    not_found_grace=_GRACE,
    trace_fields=frozenset({"printful_order_id", "external_id", "status"}),
)
SHOPIFY_CREATE_FULFILLMENT = ToolContract(
    name="shopify.create_fulfillment",
    version="1",
    description="Mark a Shopify order fulfilled with tracking.",
    input_model=CreateFulfillmentInput,
    output_model=CreateFulfillmentOutput,
    side_effect=SideEffect.WRITE,
    provider="shopify",
    scopes=frozenset({"orders:fulfill"}),
    timeout=_WRITE,
    trace_fields=frozenset({"order_id", "tracking_company", "fulfillment_id", "status"}),
)
SHOPIFY_REFUND_CREATE = ToolContract(
    name="shopify.refund_create",
    version="1",
    description="Record a refund on the Shopify order (refundCreate, @idempotent).",
    input_model=ShopifyRefundInput,
    output_model=ShopifyRefundOutput,
    side_effect=SideEffect.FINANCIAL,
    provider="shopify",
    scopes=frozenset({"orders:refund"}),
    timeout=_WRITE,
    retry=_MONEY_RETRY,
    default_hitl=HitlMode.ALWAYS,
    trace_fields=frozenset(
        {"order_id", "refund_request_id", "amount_minor", "currency", "refund_id"}
    ),
)
SHOPIFY_CANCEL_ORDER = ToolContract(
    name="shopify.cancel_order",
    version="1",
    description="Cancel a Shopify order (orderCancel).",
    input_model=CancelOrderInput,
    output_model=CancelOrderOutput,
    side_effect=SideEffect.WRITE,
    provider="shopify",
    scopes=frozenset({"orders:cancel"}),
    timeout=_WRITE,
    trace_fields=frozenset({"order_id", "reason", "status"}),
)
SENDGRID_SEND_EMAIL = ToolContract(
    name="sendgrid.send_email",
    version="1",
    description="Send a templated customer email.",
    input_model=SendEmailInput,
    output_model=SendEmailOutput,
    side_effect=SideEffect.COMMUNICATION,
    provider="sendgrid",
    scopes=frozenset({"email:send"}),
    timeout=_WRITE,
    trace_fields=frozenset({"template", "category", "message_id", "status"}),
)
LLM_COMPLETE = ToolContract(
    name="llm.complete",
    version="1",
    description="Complete a pinned prompt with a pinned model (template model offline).",
    input_model=CompleteInput,
    output_model=CompleteOutput,
    side_effect=SideEffect.READ,
    provider="llm",
    scopes=frozenset({"llm:complete"}),
    timeout=timedelta(seconds=60),
    retry=RetrySpec(max_attempts=3),
    token_budget_field="max_tokens",  # noqa: S106
    trace_fields=frozenset(
        {
            "model",
            "prompt_id",
            "prompt_version",
            "max_tokens",
            "input_tokens",
            "output_tokens",
            "finish_reason",
        }
    ),
)

CATALOG: tuple[ToolContract, ...] = (  # type: ignore[type-arg]
    SHOPIFY_GET_ORDER,
    RISK_ASSESS,
    STRIPE_CAPTURE_PAYMENT,
    STRIPE_CANCEL_PAYMENT,
    STRIPE_CREATE_REFUND,
    STRIPE_GET_PAYMENT_INTENT,
    STRIPE_LIST_REFUNDS,
    PRINTFUL_CREATE_ORDER,
    PRINTFUL_CONFIRM_ORDER,
    PRINTFUL_CANCEL_ORDER,
    PRINTFUL_GET_ORDER,
    SHOPIFY_CREATE_FULFILLMENT,
    SHOPIFY_REFUND_CREATE,
    SHOPIFY_CANCEL_ORDER,
    SENDGRID_SEND_EMAIL,
    LLM_COMPLETE,
)

REGISTRY = ToolRegistry(CATALOG)

# The tools each workflow type calls: a tenant's config must grant the whole closure
# (CC-01). Workflow authors keep this in step with their code.
WORKFLOW_TOOLS: dict[str, frozenset[str]] = {
    "order_fulfill": frozenset(
        {
            "shopify.get_order@1",
            "risk.assess@1",
            "stripe.capture_payment@1",
            "printful.create_order@1",
            "printful.confirm_order@1",
            "printful.get_order@1",
            "shopify.create_fulfillment@1",
            "sendgrid.send_email@1",
            # compensations: cancel the Printful draft, refund the capture
            "printful.cancel_order@1",
            "stripe.create_refund@1",
        }
    ),
    "payment_failure": frozenset(
        {
            "shopify.get_order@1",
            "stripe.get_payment_intent@1",
            "stripe.cancel_payment@1",
            "shopify.cancel_order@1",
            "sendgrid.send_email@1",
        }
    ),
    "refund": frozenset(
        {
            "shopify.get_order@1",
            "stripe.create_refund@1",
            "shopify.refund_create@1",
            "sendgrid.send_email@1",
        }
    ),
    "order_cancellation": frozenset(
        {
            "shopify.get_order@1",
            "printful.get_order@1",
            "printful.cancel_order@1",
            "stripe.get_payment_intent@1",
            "stripe.cancel_payment@1",
            "stripe.create_refund@1",
            "shopify.cancel_order@1",
            "sendgrid.send_email@1",
        }
    ),
    "wismo": frozenset(
        {
            "shopify.get_order@1",
            "printful.get_order@1",
            "llm.complete@1",
            "sendgrid.send_email@1",
        }
    ),
    "reconciliation": frozenset(
        {
            # provider truth
            "stripe.list_refunds@1",
            "stripe.get_payment_intent@1",
            "printful.get_order@1",
            "shopify.get_order@1",
            # the financial repair (always approved first), ops and approval notices
            "shopify.refund_create@1",
            "sendgrid.send_email@1",
        }
    ),
}
