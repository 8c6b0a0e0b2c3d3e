"""Shopify tools: read an order, fulfil it, record a refund, cancel it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.contracts import ToolModel
from kernel.tools.defaults import (
    CHANGE,
    CURRENCY,
    MONEY_MOVE,
    READ_BACK,
    Currency,
)

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
