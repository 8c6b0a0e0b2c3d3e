"""Shopify tools: read or search orders, fulfil one, record a refund, cancel it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from kernel.contracts import SideEffect, ToolModel
from kernel.tools.defaults import (
    CHANGE,
    CURRENCY,
    FAST,
    MONEY_MOVE,
    READ_BACK,
    READ_RETRY,
    Currency,
    ToolKind,
)

# A search: an empty answer is an answer (no not-found grace), retried like a read.
SEARCH = ToolKind(SideEffect.READ, timeout=FAST, retry=READ_RETRY)

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


class SearchOrdersInput(ToolModel):
    """Shopify's ``orders(first:, query:)`` with its search syntax: each filter given is
    one term (``name:``, ``email:``, ``created_at:>=`` / ``created_at:<``), all ANDed;
    at least one filter. ``created_to`` is exclusive. Newest first."""

    name: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None
    first: int = Field(default=10, ge=1, le=250)

    @model_validator(mode="after")
    def _some_filter(self) -> SearchOrdersInput:
        if all(v is None for v in (self.name, self.email, self.created_from, self.created_to)):
            raise ValueError("give at least one of name, email, created_from, created_to")
        if self.created_from and self.created_to and self.created_to <= self.created_from:
            raise ValueError("created_to must be after created_from")
        return self


class OrderTracking(ToolModel):
    """The tracking of the order's latest fulfillment."""

    number: str | None = None
    url: str | None = None
    company: str | None = None


class OrderSummary(ToolModel):
    order_id: str  # the legacy (numeric) id, as the other tools take it
    order_name: str
    customer_email: str | None = None
    created_at: datetime
    financial_status: str
    fulfillment_status: str | None = None
    total_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    tracking: OrderTracking | None = None


class SearchOrdersOutput(ToolModel):
    orders: list[OrderSummary] = Field(default_factory=list)
    count: int = Field(default=0, ge=0)


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


# --- Contracts -----------------------------------------------------------------------

GET_ORDER = READ_BACK.contract(
    name="shopify.get_order",
    version="1",
    description="Read an order from Shopify.",
    input_model=GetOrderInput,
    output_model=GetOrderOutput,
    provider="shopify",
    scopes={"orders:read"},
    trace_fields={
        "order_id",
        "order_name",
        "financial_status",
        "fulfillment_status",
        "total_minor",
        "currency",
    },
)
SEARCH_ORDERS = SEARCH.contract(
    name="shopify.search_orders",
    version="1",
    description="Search orders (Shopify search syntax: name, email, created_at range).",
    input_model=SearchOrdersInput,
    output_model=SearchOrdersOutput,
    provider="shopify",
    scopes={"orders:read"},
    # Neither the email searched for nor any order found: a search's trace is its shape.
    trace_fields={"first", "created_from", "created_to", "count"},
)
CREATE_FULFILLMENT = CHANGE.contract(
    name="shopify.create_fulfillment",
    version="1",
    description="Mark a Shopify order fulfilled with tracking.",
    input_model=CreateFulfillmentInput,
    output_model=CreateFulfillmentOutput,
    provider="shopify",
    scopes={"orders:fulfill"},
    trace_fields={"order_id", "tracking_company", "fulfillment_id", "status"},
)
REFUND_CREATE = MONEY_MOVE.contract(
    name="shopify.refund_create",
    version="1",
    description="Record a refund on the Shopify order (refundCreate, @idempotent).",
    input_model=ShopifyRefundInput,
    output_model=ShopifyRefundOutput,
    provider="shopify",
    scopes={"orders:refund"},
    trace_fields={"order_id", "refund_request_id", "amount_minor", "currency", "refund_id"},
)
CANCEL_ORDER = CHANGE.contract(
    name="shopify.cancel_order",
    version="1",
    description="Cancel a Shopify order (orderCancel).",
    input_model=CancelOrderInput,
    output_model=CancelOrderOutput,
    provider="shopify",
    scopes={"orders:cancel"},
    trace_fields={"order_id", "reason", "status"},
)
