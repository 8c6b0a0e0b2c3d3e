"""Printful tools: create, confirm, update, cancel and read an order (v2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from kernel.contracts import SideEffect, ToolContract, ToolModel
from kernel.tools.defaults import (
    BULK_READ,
    CHANGE,
    READ_BACK,
    READ_RETRY,
    Currency,
)

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


class UpdatePrintfulOrderInput(ToolModel):
    """``PATCH /v2/orders/{id}``: the recipient replaced (a held or failed order's address
    corrected). Printful takes a partial update; only the recipient is sent."""

    printful_order_id: int = Field(gt=0)
    recipient: PrintfulRecipient


class Shipment(ToolModel):
    carrier: str
    tracking_number: str
    tracking_url: str | None = None


class GetPrintfulOrderOutput(ToolModel):
    printful_order_id: int
    external_id: str | None = None
    status: str
    shipments: list[Shipment] = Field(default_factory=list)
    # The address Printful ships to (None: not read, or not a complete address).
    recipient: PrintfulRecipient | None = None


CREATE_ORDER = CHANGE.contract(
    name="printful.create_order",
    version="1",
    description="Create a Printful draft order (looked up by @external_id first).",
    input_model=CreatePrintfulOrderInput,
    output_model=PrintfulOrderOutput,
    provider="printful",
    scopes={"fulfillment:write"},
    trace_fields={"external_id", "printful_order_id", "status", "costs_minor", "currency"},
)
CONFIRM_ORDER = CHANGE.contract(
    name="printful.confirm_order",
    version="1",
    description="Confirm a Printful draft order.",
    input_model=PrintfulOrderRef,
    output_model=PrintfulOrderOutput,
    provider="printful",
    scopes={"fulfillment:write"},
    trace_fields={"printful_order_id", "status"},
)
UPDATE_ORDER = CHANGE.contract(
    name="printful.update_order",
    version="1",
    description="Update a Printful order's recipient (PATCH; a held or failed order's address).",
    input_model=UpdatePrintfulOrderInput,
    output_model=PrintfulOrderOutput,
    provider="printful",
    scopes={"fulfillment:write"},
    trace_fields={"printful_order_id", "status"},
)
CANCEL_ORDER = CHANGE.contract(
    name="printful.cancel_order",
    version="1",
    description="Cancel a Printful order.",
    input_model=PrintfulOrderRef,
    output_model=PrintfulOrderOutput,
    provider="printful",
    scopes={"fulfillment:cancel"},
    trace_fields={"printful_order_id", "status"},
)
GET_ORDER = READ_BACK.contract(
    name="printful.get_order",
    version="1",
    description="Read a Printful order and shipments.",
    input_model=PrintfulOrderRef,
    output_model=GetPrintfulOrderOutput,
    provider="printful",
    scopes={"fulfillment:read"},
    trace_fields={"printful_order_id", "external_id", "status"},
)


class OrderCostsInput(ToolModel):
    """The costs of our Printful orders, by the external ids we gave them (the daily
    closeout: one per Shopify order of the day; an order never sent to Printful is
    reported missing, not an error)."""

    external_ids: list[str] = Field(min_length=1, max_length=250)


class PrintfulOrderCosts(ToolModel):
    """An order's ``costs`` (what Printful charges us) in minor units; ``billed`` is
    False for a draft or a cancelled order (Printful charges on confirmation)."""

    external_id: str
    printful_order_id: int
    status: str
    billed: bool
    calculation_status: str
    currency: Currency
    subtotal_minor: int = 0
    discount_minor: int = 0
    shipping_minor: int = 0
    tax_minor: int = 0  # tax + vat
    total_minor: int = 0


class OrderCostsOutput(ToolModel):
    orders: list[PrintfulOrderCosts] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)


# A read of many orders (an absent one is an answer, not "not there yet": no grace).
GET_ORDER_COSTS = ToolContract(
    name="printful.get_order_costs",
    version="1",
    description="Read the costs of Printful orders by our external ids (daily closeout).",
    input_model=OrderCostsInput,
    output_model=OrderCostsOutput,
    side_effect=SideEffect.READ,
    provider="printful",
    scopes=frozenset({"fulfillment:read"}),
    timeout=BULK_READ,  # one GET per order, at Printful's 120/min
    retry=READ_RETRY,
    trace_fields=frozenset(),
)
