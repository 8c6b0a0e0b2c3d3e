"""Printful tools: draft (looked up by ``@external_id`` first), confirm, cancel, read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

from temporalio import activity

from activities.errors import provider_errors, run_side_effect
from activities.money import to_minor
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner, verify_call
from autobiz.providers.printful_client import OrderItem, PrintfulOrder, PrintfulOrders, Recipient
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.printful import (
    CreatePrintfulOrderInput,
    GetPrintfulOrderOutput,
    PrintfulOrderOutput,
    PrintfulOrderRef,
    Shipment,
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


class PrintfulActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._runner = SideEffectRunner(db)

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

    @activity.defn(name=tools.printful.CANCEL_ORDER.activity_name)
    async def cancel_order(self, ctx: CallContext, input: PrintfulOrderRef) -> PrintfulOrderOutput:
        return await self._move(ctx, input, PrintfulOrders.cancel_order)

    @activity.defn(name=tools.printful.GET_ORDER.activity_name)
    async def get_order(self, ctx: CallContext, input: PrintfulOrderRef) -> GetPrintfulOrderOutput:
        with provider_errors():
            verify_call(ctx, input)
            printful = await self._clients.printful(ctx.tenant_id)
            order = await printful.get_order(input.order_ref)
            shipments = await printful.shipments(input.order_ref)
        return GetPrintfulOrderOutput(
            printful_order_id=order.id,
            external_id=order.external_id,
            status=order.status,
            shipments=[
                Shipment(
                    carrier=s.carrier or "unknown",
                    tracking_number=s.tracking_number,
                    tracking_url=s.tracking_url,
                )
                for s in shipments
                if s.tracking_number
            ],
        )
