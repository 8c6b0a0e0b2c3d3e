"""Stripe tools: capture, void, read a PaymentIntent; create and list refunds.

Money is always integer minor units plus an ISO 4217 currency code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.contracts import SideEffect, ToolContract, ToolModel
from kernel.tools.defaults import (
    CURRENCY,
    MONEY_MOVE,
    READ_BACK,
    WRITE,
    Currency,
    RiskLevel,
)

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


CAPTURE_PAYMENT = MONEY_MOVE.contract(
    name="stripe.capture_payment",
    version="1",
    description="Capture an authorised PaymentIntent.",
    input_model=CapturePaymentInput,
    output_model=CapturePaymentOutput,
    provider="stripe",
    scopes={"payments:capture"},
    trace_fields={
        "payment_intent_id",
        "order_id",
        "amount_minor",
        "currency",
        "risk_level",
        "status",
        "amount_captured_minor",
    },
)
CANCEL_PAYMENT = MONEY_MOVE.contract(
    name="stripe.cancel_payment",
    version="1",
    description="Void an uncaptured PaymentIntent.",
    input_model=CancelPaymentInput,
    output_model=CancelPaymentOutput,
    provider="stripe",
    scopes={"payments:void"},
    trace_fields={"payment_intent_id", "order_id", "amount_minor", "currency", "reason", "status"},
)
GET_PAYMENT_INTENT = READ_BACK.contract(
    name="stripe.get_payment_intent",
    version="1",
    description="Read a PaymentIntent: status, amounts, last decline, order key.",
    input_model=GetPaymentIntentInput,
    output_model=GetPaymentIntentOutput,
    provider="stripe",
    scopes={"payments:read"},
    trace_fields={
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
    },
)
LIST_REFUNDS = ToolContract(
    name="stripe.list_refunds",
    version="1",
    description="List refunds of a PaymentIntent or created in a time range (reconciliation).",
    input_model=ListRefundsInput,
    output_model=ListRefundsOutput,
    side_effect=SideEffect.READ,
    provider="stripe",
    scopes=frozenset({"payments:read"}),
    timeout=WRITE,
    trace_fields=frozenset(
        {"payment_intent_id", "created_gte", "created_lte", "max_results", "truncated"}
    ),
)
CREATE_REFUND = MONEY_MOVE.contract(
    name="stripe.create_refund",
    version="1",
    description="Refund (part of) a captured payment.",
    input_model=CreateRefundInput,
    output_model=CreateRefundOutput,
    provider="stripe",
    scopes={"payments:refund"},
    trace_fields={
        "payment_intent_id",
        "order_id",
        "refund_request_id",
        "amount_minor",
        "currency",
        "reason",
        "refund_id",
        "status",
    },
)


class ListBalanceTransactionsInput(ToolModel):
    """Balance transactions created in ``[created_gte, created_lt)`` (epoch seconds): a
    tenant-local day's window for the daily closeout. At most ``max_results``."""

    created_gte: int = Field(ge=0)
    created_lt: int = Field(gt=0)
    max_results: int = Field(default=5000, ge=1, le=20000)


class BalanceTransactionView(ToolModel):
    """One balance transaction (minor units): ``amount`` gross (negative for money out),
    ``fee`` Stripe's, ``net`` = amount - fee; ``source`` the charge or refund."""

    txn_id: str
    type: str
    amount_minor: int
    fee_minor: int = 0
    net_minor: int
    currency: Currency = CURRENCY
    source: str | None = None
    created: int


class ListBalanceTransactionsOutput(ToolModel):
    transactions: list[BalanceTransactionView] = Field(default_factory=list)
    truncated: bool = False


LIST_BALANCE_TRANSACTIONS = ToolContract(
    name="stripe.list_balance_transactions",
    version="1",
    description="List the balance transactions (gross, fee, net) created in a time range.",
    input_model=ListBalanceTransactionsInput,
    output_model=ListBalanceTransactionsOutput,
    side_effect=SideEffect.READ,
    provider="stripe",
    scopes=frozenset({"balance:read"}),
    timeout=WRITE,
    trace_fields=frozenset({"created_gte", "created_lt", "max_results", "truncated"}),
)
