"""Shopify tools: read an order, fulfil it with tracking, record a refund, cancel it."""

from __future__ import annotations

from temporalio import activity

from activities.errors import provider_errors, run_side_effect
from activities.money import from_minor, to_minor
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner, verify_call
from autobiz.providers.errors import InvalidRequest
from autobiz.providers.shopify_client import (
    ShopifyAddress,
    TrackingInfo,
    order_gid,
    order_search_query,
)
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.codes import ErrorCode
from kernel.contracts import CallContext
from kernel.tools.shopify import (
    CancelOrderInput,
    CancelOrderOutput,
    CreateFulfillmentInput,
    CreateFulfillmentOutput,
    GetOrderInput,
    GetOrderOutput,
    LineItem,
    OrderSummary,
    OrderTracking,
    SearchOrdersInput,
    SearchOrdersOutput,
    ShippingAddress,
    ShopifyRefundInput,
    ShopifyRefundOutput,
)

REFUND_GATEWAY = "stripe"


class ShopifyActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._runner = SideEffectRunner(db)

    @activity.defn(name=tools.shopify.GET_ORDER.activity_name)
    async def get_order(self, ctx: CallContext, input: GetOrderInput) -> GetOrderOutput:
        with provider_errors():
            verify_call(ctx, input)
            shopify = await self._clients.shopify(ctx.tenant_id)
            order = await shopify.get_order(order_gid(input.order_id))
        currency = order.total.currency
        return GetOrderOutput(
            order_id=input.order_id,
            order_name=order.name,
            financial_status=order.financial_status,
            fulfillment_status=order.fulfillment_status,
            total_minor=to_minor(order.total.amount, currency),
            currency=currency,
            customer_email=order.email,
            payment_intent_id=order.payment_intent_id,
            shipping_address=_shipping_address(order.shipping_address),
            line_items=[
                LineItem(
                    sku=li.sku or "",
                    quantity=li.quantity,
                    variant_id=li.id,
                    unit_price_minor=to_minor(li.unit_price.amount, li.unit_price.currency),
                )
                for li in order.line_items
            ],
        )

    @activity.defn(name=tools.shopify.SEARCH_ORDERS.activity_name)
    async def search_orders(self, ctx: CallContext, input: SearchOrdersInput) -> SearchOrdersOutput:
        with provider_errors():
            verify_call(ctx, input)
            shopify = await self._clients.shopify(ctx.tenant_id)
            found = await shopify.search_orders(
                order_search_query(
                    name=input.name,
                    email=input.email,
                    created_from=input.created_from,
                    created_to=input.created_to,
                ),
                first=input.first,
            )
        orders = [
            OrderSummary(
                order_id=o.legacy_id,
                order_name=o.name,
                customer_email=o.email,
                created_at=o.created_at,
                financial_status=o.financial_status or "",
                fulfillment_status=o.fulfillment_status,
                total_minor=to_minor(o.total.amount, o.total.currency),
                currency=o.total.currency,
                tracking=OrderTracking(
                    number=o.tracking.number, url=o.tracking.url, company=o.tracking.company
                )
                if o.tracking
                else None,
            )
            for o in found
        ]
        return SearchOrdersOutput(orders=orders, count=len(orders))

    @activity.defn(name=tools.shopify.CREATE_FULFILLMENT.activity_name)
    async def create_fulfillment(
        self, ctx: CallContext, input: CreateFulfillmentInput
    ) -> CreateFulfillmentOutput:
        async def execute() -> ProviderResult[CreateFulfillmentOutput]:
            shopify = await self._clients.shopify(ctx.tenant_id)
            orders = await shopify.fulfillment_orders(order_gid(input.order_id))
            open_ids = [fo.id for fo in orders if fo.status == "OPEN"]
            if not open_ids:
                # Already fulfilled (a create whose answer was lost): nothing left to do.
                closed = [fo.id for fo in orders if fo.status == "CLOSED"]
                if not closed:
                    raise InvalidRequest(
                        f"order {input.order_id} has no fulfillable fulfillment order",
                        provider="shopify",
                        provider_code=ErrorCode.NOT_FULFILLABLE,
                    )
                out = CreateFulfillmentOutput(fulfillment_id=closed[0], status="ALREADY_FULFILLED")
                return ProviderResult(output=out, provider_object_id=closed[0], status=out.status)
            created = await shopify.create_fulfillment(
                open_ids,
                tracking=TrackingInfo(
                    company=input.tracking_company,
                    number=input.tracking_number,
                    url=input.tracking_url,
                ),
                notify_customer=input.notify_customer,
            )
            out = CreateFulfillmentOutput(fulfillment_id=created.id, status=created.status)
            return ProviderResult(
                output=out,
                provider_object_id=created.id,
                status=created.status,
                details={"order_id": input.order_id, "tracking_number": input.tracking_number},
            )

        return await run_side_effect(self._runner, ctx, input, CreateFulfillmentOutput, execute)

    @activity.defn(name=tools.shopify.REFUND_CREATE.activity_name)
    async def refund_create(
        self, ctx: CallContext, input: ShopifyRefundInput
    ) -> ShopifyRefundOutput:
        async def execute() -> ProviderResult[ShopifyRefundOutput]:
            shopify = await self._clients.shopify(ctx.tenant_id)
            refund = await shopify.create_refund(
                order_gid(input.order_id),
                amount=from_minor(input.amount_minor, input.currency),
                gateway=REFUND_GATEWAY,
                idempotency_key=ctx.external_key,
                note=input.note,
                notify=input.notify_customer,
            )
            amount = to_minor(refund.amount.amount, refund.amount.currency)
            out = ShopifyRefundOutput(
                refund_id=refund.id, amount_minor=amount, currency=refund.amount.currency
            )
            return ProviderResult(
                output=out,
                provider_object_id=refund.id,
                status="succeeded",
                amount_minor=amount,
                currency=out.currency,
                details={"order_id": input.order_id, "refund_request_id": input.refund_request_id},
            )

        return await run_side_effect(self._runner, ctx, input, ShopifyRefundOutput, execute)

    @activity.defn(name=tools.shopify.CANCEL_ORDER.activity_name)
    async def cancel_order(self, ctx: CallContext, input: CancelOrderInput) -> CancelOrderOutput:
        async def execute() -> ProviderResult[CancelOrderOutput]:
            shopify = await self._clients.shopify(ctx.tenant_id)
            gid = order_gid(input.order_id)
            current = await shopify.get_order(gid)
            if current.cancelled_at is None:
                await shopify.cancel_order(
                    gid,
                    reason=input.reason,
                    restock=input.restock,
                    notify_customer=input.notify_customer,
                )
            out = CancelOrderOutput(order_id=input.order_id, status="cancelled")
            return ProviderResult(output=out, provider_object_id=gid, status=out.status)

        return await run_side_effect(self._runner, ctx, input, CancelOrderOutput, execute)


def _shipping_address(a: ShopifyAddress | None) -> ShippingAddress | None:
    if a is None:
        return None
    return ShippingAddress(
        name=a.name,
        address1=a.address1,
        address2=a.address2,
        city=a.city,
        zip=a.zip,
        country_code=a.country_code,
        state_code=a.province_code,
        phone=a.phone,
    )
