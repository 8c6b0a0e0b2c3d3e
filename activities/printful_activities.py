"""Printful tools: draft (looked up by ``@external_id`` first), confirm, cancel, read.

Tracking, as Printful publishes v2: ``GET /v2/orders/{id}/shipments`` lists a shipment's
carrier and ``tracking_url`` but no tracking number; the number comes only in the
``shipment_sent`` webhook (whose shipment has no carrier). So ``get_order`` — what
OrderFulfill polls when the shipment signal did not come — takes each shipment's number
from the signed ``shipment_sent`` event the ingress stored for that shipment. A shipment
with no such event is left out (never a made-up number): the poll then finds nothing and
OrderFulfill's bounded polling ends in ``SHIPMENT_TIMEOUT`` as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from temporalio import activity

from activities.errors import provider_errors, run_side_effect
from activities.money import to_minor
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner, verify_call
from autobiz.providers.printful_client import OrderItem, PrintfulOrder, PrintfulOrders, Recipient
from autobiz.providers.printful_client import Shipment as ListedShipment
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.printful import (
    CreatePrintfulOrderInput,
    GetPrintfulOrderOutput,
    OrderCostsInput,
    OrderCostsOutput,
    PrintfulOrderCosts,
    PrintfulOrderOutput,
    PrintfulOrderRef,
    PrintfulRecipient,
    Shipment,
    UpdatePrintfulOrderInput,
)

# A client call that moves an existing order on: confirm it, cancel it.
OrderMove = Callable[[PrintfulOrders, int | str], Awaitable[PrintfulOrder]]


def _output(order: PrintfulOrder) -> PrintfulOrderOutput:
    costs_minor: int | None = None
    currency = order.costs.get("currency")
    try:
        if currency and order.costs.get("total") is not None:
            costs_minor = to_minor(Decimal(str(order.costs["total"])), str(currency))
    except InvalidOperation:
        costs_minor = None
    return PrintfulOrderOutput(
        printful_order_id=order.id,
        external_id=order.external_id,
        status=order.status,
        costs_minor=costs_minor,
        currency=str(currency) if currency else None,
    )


def _result(order: PrintfulOrder) -> ProviderResult[PrintfulOrderOutput]:
    out = _output(order)
    return ProviderResult(
        output=out,
        provider_object_id=str(order.id),
        status=order.status,
        amount_minor=out.costs_minor,
        currency=out.currency,
        details={"external_id": order.external_id, "created": order.created},
    )


def _recipient(order: PrintfulOrder) -> PrintfulRecipient | None:
    """The address Printful holds (its read-back has every field, empty ones as "")."""
    known = PrintfulRecipient.model_fields
    raw = {k: v for k, v in (order.recipient or {}).items() if k in known and v not in ("", None)}
    try:
        return PrintfulRecipient.model_validate(raw)
    except ValueError:
        return None


# The shipments of one Printful order, as the signed shipment_sent events stored them.
SENT_SHIPMENTS = (
    "SELECT payload->'data'->'shipment' AS shipment FROM event_store "
    "WHERE tenant_id = %s AND source = 'printful' AND topic = 'shipment_sent' "
    "AND signature_valid AND status <> 'dead_letter' "
    "AND payload->'data'->'order'->>'id' = %s ORDER BY received_at"
)


def _tracked(listed: list[ListedShipment], sent: list[dict[str, Any]]) -> list[Shipment]:
    """The listed shipments with a tracking number: the listing's own (should Printful
    ever add one), else the one its ``shipment_sent`` event carried."""
    numbers = {
        str(s.get("id")): (str(s["tracking_number"]), s.get("tracking_url"))
        for s in sent
        if isinstance(s, dict) and s.get("tracking_number")
    }
    tracked: list[Shipment] = []
    for s in listed:
        number, url = numbers.get(str(s.id), (s.tracking_number, None))
        if number:
            tracked.append(
                Shipment(
                    carrier=s.carrier or "unknown",
                    tracking_number=number,
                    tracking_url=s.tracking_url or url,
                )
            )
    return tracked


class PrintfulActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._db = db
        self._runner = SideEffectRunner(db)

    async def _sent_shipments(self, tenant_id: str, printful_order_id: int) -> list[Any]:
        async with self._db.tenant(tenant_id) as s:
            rows = await s.fetch_all(SENT_SHIPMENTS, (tenant_id, str(printful_order_id)))
        return [row["shipment"] for row in rows]

    @activity.defn(name=tools.printful.CREATE_ORDER.activity_name)
    async def create_order(
        self, ctx: CallContext, input: CreatePrintfulOrderInput
    ) -> PrintfulOrderOutput:
        async def execute() -> ProviderResult[PrintfulOrderOutput]:
            printful = await self._clients.printful(ctx.tenant_id)
            # The client looks the order up by @external_id before it creates one.
            order = await printful.create_order(
                external_id=input.external_id,
                recipient=Recipient.model_validate(input.recipient.model_dump()),
                items=[
                    OrderItem(
                        catalog_variant_id=i.catalog_variant_id,
                        quantity=i.quantity,
                        placements=[
                            {
                                "placement": "front",
                                "technique": "dtg",
                                "layers": [{"type": "file", "url": i.file_url}],
                            }
                        ]
                        if i.file_url
                        else [],
                    )
                    for i in input.items
                ],
            )
            return _result(order)

        return await run_side_effect(self._runner, ctx, input, PrintfulOrderOutput, execute)

    async def _move(
        self, ctx: CallContext, input: PrintfulOrderRef, move: OrderMove
    ) -> PrintfulOrderOutput:
        """Move an existing order on (confirm, cancel), once, with a receipt."""

        async def execute() -> ProviderResult[PrintfulOrderOutput]:
            printful = await self._clients.printful(ctx.tenant_id)
            return _result(await move(printful, input.order_ref))

        return await run_side_effect(self._runner, ctx, input, PrintfulOrderOutput, execute)

    @activity.defn(name=tools.printful.CONFIRM_ORDER.activity_name)
    async def confirm_order(self, ctx: CallContext, input: PrintfulOrderRef) -> PrintfulOrderOutput:
        return await self._move(ctx, input, PrintfulOrders.confirm_order)

    @activity.defn(name=tools.printful.UPDATE_ORDER.activity_name)
    async def update_order(
        self, ctx: CallContext, input: UpdatePrintfulOrderInput
    ) -> PrintfulOrderOutput:
        async def execute() -> ProviderResult[PrintfulOrderOutput]:
            printful = await self._clients.printful(ctx.tenant_id)
            order = await printful.update_order(
                input.printful_order_id,
                recipient=Recipient.model_validate(input.recipient.model_dump()),
            )
            return _result(order)

        return await run_side_effect(self._runner, ctx, input, PrintfulOrderOutput, execute)

    @activity.defn(name=tools.printful.CANCEL_ORDER.activity_name)
    async def cancel_order(self, ctx: CallContext, input: PrintfulOrderRef) -> PrintfulOrderOutput:
        return await self._move(ctx, input, PrintfulOrders.cancel_order)

    @activity.defn(name=tools.printful.GET_ORDER.activity_name)
    async def get_order(self, ctx: CallContext, input: PrintfulOrderRef) -> GetPrintfulOrderOutput:
        with provider_errors():
            verify_call(ctx, input)
            printful = await self._clients.printful(ctx.tenant_id)
            order = await printful.get_order(input.order_ref)
            listed = await printful.shipments(input.order_ref)
        sent = await self._sent_shipments(ctx.tenant_id, order.id) if listed else []
        return GetPrintfulOrderOutput(
            printful_order_id=order.id,
            external_id=order.external_id,
            status=order.status,
            shipments=_tracked(listed, sent),
            recipient=_recipient(order),
        )

    @activity.defn(name=tools.printful.GET_ORDER_COSTS.activity_name)
    async def get_order_costs(self, ctx: CallContext, input: OrderCostsInput) -> OrderCostsOutput:
        """A read: each order's v2 ``costs`` as minor units (``GET /v2/orders/@{id}``)."""
        found: list[PrintfulOrderCosts] = []
        missing: list[str] = []
        with provider_errors():
            verify_call(ctx, input)
            printful = await self._clients.printful(ctx.tenant_id)
            for external_id in input.external_ids:
                order = await printful.find_by_external_id(external_id)
                if order is None:
                    missing.append(external_id)
                    continue
                found.append(_costs(external_id, order))
        return OrderCostsOutput(orders=found, missing=missing)


# What Printful bills: a confirmed order onwards (a draft is free, a cancelled one refunded).
_BILLED = frozenset({"pending", "inprocess", "onhold", "partial", "fulfilled"})


def _costs(external_id: str, order: PrintfulOrder) -> PrintfulOrderCosts:
    costs = order.costs
    currency = str(costs.get("currency") or "USD").upper()

    def minor(*names: str) -> int:
        total = 0
        for name in names:
            try:
                total += to_minor(Decimal(str(costs.get(name) or "0")), currency)
            except InvalidOperation:
                continue
        return total

    return PrintfulOrderCosts(
        external_id=external_id,
        printful_order_id=order.id,
        status=order.status,
        billed=order.status in _BILLED,
        calculation_status=str(costs.get("calculation_status") or "done"),
        currency=currency,
        subtotal_minor=minor("subtotal"),
        discount_minor=minor("discount"),
        shipping_minor=minor("shipping"),
        tax_minor=minor("tax", "vat"),
        total_minor=minor("total"),
    )
