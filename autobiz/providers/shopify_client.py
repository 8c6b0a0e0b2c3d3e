"""Shopify GraphQL Admin API (pinned version) over httpx.

Every operation is named (the sandbox dispatches on the name; Shopify ignores it). The
cost-based throttle is respected: the client remembers the last ``throttleStatus`` and,
before a call, waits for the bucket to refill enough for it — but never longer than
``max_throttle_wait_seconds``; beyond that, and whenever Shopify answers ``THROTTLED``,
it raises a retryable :class:`RateLimited` with the wait as ``retry_after`` so Temporal
backs off. ``refundCreate`` carries ``@idempotent(key:)``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from autobiz.providers.errors import (
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    ProviderError,
    RateLimited,
)
from autobiz.providers.http import JsonClient, error_for_status, json_body
from autobiz.providers.hygiene import ensure_host_allowed, ensure_test_credential
from autobiz.providers.throttle import Throttle
from autobiz.settings import Settings

PROVIDER = "shopify"

GET_ORDER = """
query GetOrder($id: ID!) {
  order(id: $id) {
    id name email createdAt cancelledAt cancelReason
    displayFinancialStatus displayFulfillmentStatus tags note currencyCode
    totalPriceSet { shopMoney { amount currencyCode } }
    totalRefundedSet { shopMoney { amount currencyCode } }
    shippingAddress { name address1 address2 city zip countryCodeV2 provinceCode phone }
    transactions(first: 20) { kind status gateway authorizationCode }
    lineItems(first: 100) {
      nodes { id title quantity sku originalUnitPriceSet { shopMoney { amount currencyCode } } }
    }
  }
}"""

SEARCH_ORDERS = """
query SearchOrders($first: Int!, $query: String!) {
  orders(first: $first, query: $query, sortKey: CREATED_AT, reverse: true) {
    nodes {
      id legacyResourceId name email createdAt
      displayFinancialStatus displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      fulfillments(first: 10) { createdAt trackingInfo(first: 1) { company number url } }
    }
  }
}"""

FULFILLMENT_ORDERS = """
query FulfillmentOrders($orderId: ID!) {
  order(id: $orderId) {
    id
    fulfillmentOrders(first: 20) {
      nodes { id status lineItems(first: 100) { nodes { id totalQuantity remainingQuantity } } }
    }
  }
}"""

ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!,
                     $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock,
              notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { field message code }
    userErrors { field message }
  }
}"""

REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!, $idempotencyKey: String!) {
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {
    refund { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } }
    order { id }
    userErrors { field message }
  }
}"""

FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment { id status trackingInfo { company number url } }
    userErrors { field message }
  }
}"""

TAGS_ADD = """
mutation TagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""

ORDER_UPDATE = """
mutation OrderUpdate($input: OrderInput!) {
  orderUpdate(input: $input) { order { id note } userErrors { field message } }
}"""

COST_ESTIMATE = 20.0  # what we assume a call costs before Shopify tells us


class Money(BaseModel):
    amount: Decimal
    currency: str


class ShopifyLineItem(BaseModel):
    id: str
    title: str
    quantity: int
    sku: str | None = None
    unit_price: Money


class ShopifyAddress(BaseModel):
    name: str
    address1: str
    address2: str | None = None
    city: str
    zip: str
    country_code: str
    province_code: str | None = None
    phone: str | None = None


class ShopifyTransaction(BaseModel):
    kind: str
    status: str
    gateway: str | None = None
    authorization_code: str | None = None


class ShopifyOrder(BaseModel):
    id: str
    name: str
    email: str | None = None
    financial_status: str
    fulfillment_status: str
    cancelled_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    total: Money
    refunded: Money
    line_items: list[ShopifyLineItem]
    shipping_address: ShopifyAddress | None = None
    transactions: list[ShopifyTransaction] = Field(default_factory=list)

    @property
    def payment_intent_id(self) -> str | None:
        """The Stripe PaymentIntent behind the order: the successful authorisation or
        sale of a Stripe gateway carries it as its ``authorizationCode``."""
        for t in self.transactions:
            if (
                t.kind in ("AUTHORIZATION", "SALE")
                and t.status == "SUCCESS"
                and (t.gateway or "").lower().startswith("stripe")
                and (t.authorization_code or "").startswith("pi_")
            ):
                return t.authorization_code
        return None


class FulfillmentOrder(BaseModel):
    id: str
    status: str
    line_item_ids: list[str]


class ShopifyRefund(BaseModel):
    id: str
    amount: Money


class TrackingInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company: str
    number: str
    url: str | None = None


class ShopifyFulfillment(BaseModel):
    id: str
    status: str


class OrderBrief(BaseModel):
    """One hit of ``orders(query:)``: the order and its latest fulfillment's tracking."""

    id: str
    legacy_id: str
    name: str
    email: str | None = None
    created_at: datetime
    financial_status: str | None = None
    fulfillment_status: str
    total: Money
    tracking: TrackingInfo | None = None


class CancelResult(BaseModel):
    job_id: str | None
    done: bool


def _money(node: dict[str, Any]) -> Money:
    shop = node["shopMoney"]
    return Money(amount=Decimal(str(shop["amount"])), currency=shop["currencyCode"])


class ShopifyAdmin(JsonClient):
    """Async Shopify Admin client for the activities."""

    provider = PROVIDER

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        cfg = settings.shopify
        ensure_test_credential(PROVIDER, "shopify.access_token", cfg.access_token, settings)
        # The shop is part of the address: ``https://{shop}`` at Shopify.
        base = cfg.api_base.replace("{shop}", cfg.shop_domain).rstrip("/")
        ensure_host_allowed(PROVIDER, base, settings)
        super().__init__(http, cfg.timeout_seconds, throttle)
        self._cfg = cfg
        self._url = f"{base}/admin/api/{cfg.api_version}/graphql.json"
        self._available: float | None = None
        self._restore_rate = 50.0
        self._stamp = time.monotonic()
        self._costs: dict[str, float] = {}  # operation -> Shopify's requestedQueryCost

    # -- transport ----------------------------------------------------------------

    def _wait_needed(self, cost: float) -> float:
        if self._available is None:
            return 0.0
        now_available = self._available + (time.monotonic() - self._stamp) * self._restore_rate
        return max(0.0, (cost - now_available) / self._restore_rate)

    def _remember(self, extensions: dict[str, Any] | None) -> None:
        status = ((extensions or {}).get("cost") or {}).get("throttleStatus")
        if status:
            self._available = float(status["currentlyAvailable"])
            self._restore_rate = float(status["restoreRate"]) or self._restore_rate
            self._stamp = time.monotonic()

    async def execute(
        self, operation: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one named operation; return ``data`` or raise a mapped error."""
        # The rate limit takes what this operation cost last time (Shopify's
        # requestedQueryCost), then settles with what Shopify says it cost.
        reserved = self._costs.get(operation, COST_ESTIMATE)
        wait = self._wait_needed(reserved)
        if wait > self._cfg.max_throttle_wait_seconds:
            raise RateLimited(
                "cost bucket exhausted",
                provider=PROVIDER,
                retry_after=wait,
                provider_code="THROTTLED",
                http_status=None,
            )
        if wait > 0:
            await asyncio.sleep(wait)
        response = await self._send(
            "POST",
            self._url,
            headers={
                "X-Shopify-Access-Token": self._cfg.access_token.get_secret_value(),
                "Content-Type": "application/json",
            },
            json={"query": query, "variables": variables, "operationName": operation},
            cost=reserved,
        )
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict):
            errors = body.get("errors") if isinstance(body, dict) else None
            raise error_for_status(
                PROVIDER,
                response.status_code,
                str(errors or response.reason_phrase),
                code=None,
                headers=response.headers,
            )
        self._remember(body.get("extensions"))
        errors = body.get("errors") or []
        await self._settle(operation, reserved, body.get("extensions"), errors)
        if errors:
            raise self._graphql_error(errors, body.get("extensions"))
        data: dict[str, Any] = body.get("data") or {}
        return data

    async def _settle(
        self,
        operation: str,
        reserved: float,
        extensions: dict[str, Any] | None,
        errors: list[dict[str, Any]],
    ) -> None:
        """Learn the operation's requested cost; give back (or take) what the query
        really cost against what was reserved. A throttled query costs nothing."""
        cost = (extensions or {}).get("cost") or {}
        requested = cost.get("requestedQueryCost")
        if requested is not None:
            self._costs[operation] = float(requested)
        throttled = any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)
        actual = cost.get("actualQueryCost")
        spent = 0.0 if throttled else float(actual if actual is not None else requested or reserved)
        if self._throttle is not None and spent != reserved:
            await self._throttle.settle(PROVIDER, reserved, spent)

    def _graphql_error(
        self, errors: list[dict[str, Any]], extensions: dict[str, Any] | None
    ) -> ProviderError:
        first = errors[0]
        code = (first.get("extensions") or {}).get("code")
        message = str(first.get("message", "GraphQL error"))
        if code == "THROTTLED":
            cost = (extensions or {}).get("cost") or {}
            requested = float(cost.get("requestedQueryCost") or COST_ESTIMATE)
            status = cost.get("throttleStatus") or {}
            available = float(status.get("currentlyAvailable", 0.0))
            rate = float(status.get("restoreRate") or self._restore_rate)
            return RateLimited(
                message,
                provider=PROVIDER,
                provider_code=code,
                http_status=200,
                retry_after=max(0.0, (requested - available) / rate),
            )
        if code == "IDEMPOTENCY_CONCURRENT_REQUEST":
            return IdempotencyConflict(
                message, provider=PROVIDER, provider_code=code, retryable=True
            )
        if code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH":
            return IdempotencyConflict(
                message, provider=PROVIDER, provider_code=code, retryable=False
            )
        return InvalidRequest(message, provider=PROVIDER, provider_code=code)

    @staticmethod
    def _user_errors(payload: dict[str, Any], *keys: str) -> None:
        for key in keys:
            errors = payload.get(key) or []
            if errors:
                messages = "; ".join(str(e.get("message")) for e in errors)
                code = errors[0].get("code")
                if code == "NOT_FOUND":
                    raise NotFound(messages, provider=PROVIDER, provider_code=code)
                raise InvalidRequest(
                    messages, provider=PROVIDER, provider_code=code or "USER_ERROR"
                )

    # -- operations -----------------------------------------------------------------

    async def get_order(self, order_id: str) -> ShopifyOrder:
        data = await self.execute("GetOrder", GET_ORDER, {"id": order_id})
        node = data.get("order")
        if node is None:
            raise NotFound(
                f"order {order_id} not found", provider=PROVIDER, provider_code="NOT_FOUND"
            )
        return ShopifyOrder(
            id=node["id"],
            name=node["name"],
            email=node.get("email"),
            financial_status=node["displayFinancialStatus"],
            fulfillment_status=node["displayFulfillmentStatus"],
            cancelled_at=node.get("cancelledAt"),
            tags=node.get("tags") or [],
            note=node.get("note"),
            total=_money(node["totalPriceSet"]),
            refunded=_money(node["totalRefundedSet"]),
            line_items=[
                ShopifyLineItem(
                    id=li["id"],
                    title=li["title"],
                    quantity=li["quantity"],
                    sku=li.get("sku"),
                    unit_price=_money(li["originalUnitPriceSet"]),
                )
                for li in node["lineItems"]["nodes"]
            ],
            shipping_address=_address(node.get("shippingAddress")),
            transactions=[
                ShopifyTransaction(
                    kind=t["kind"],
                    status=t["status"],
                    gateway=t.get("gateway"),
                    authorization_code=t.get("authorizationCode"),
                )
                for t in node.get("transactions") or []
            ],
        )

    async def search_orders(self, query: str, *, first: int) -> list[OrderBrief]:
        """``orders(first:, query:)``, newest first; ``query`` in Shopify's search syntax
        (build it with :func:`order_search_query`)."""
        data = await self.execute("SearchOrders", SEARCH_ORDERS, {"first": first, "query": query})
        return [_brief(node) for node in data["orders"]["nodes"]]

    async def fulfillment_orders(self, order_id: str) -> list[FulfillmentOrder]:
        data = await self.execute("FulfillmentOrders", FULFILLMENT_ORDERS, {"orderId": order_id})
        node = data.get("order")
        if node is None:
            raise NotFound(
                f"order {order_id} not found", provider=PROVIDER, provider_code="NOT_FOUND"
            )
        return [
            FulfillmentOrder(
                id=fo["id"],
                status=fo["status"],
                line_item_ids=[li["id"] for li in fo["lineItems"]["nodes"]],
            )
            for fo in node["fulfillmentOrders"]["nodes"]
        ]

    async def cancel_order(
        self,
        order_id: str,
        *,
        reason: str = "CUSTOMER",
        refund: bool = False,
        restock: bool = True,
        notify_customer: bool = False,
        staff_note: str | None = None,
    ) -> CancelResult:
        """``orderCancel``. Cancelling twice is refused by Shopify (a userError)."""
        data = await self.execute(
            "OrderCancel",
            ORDER_CANCEL,
            {
                "orderId": order_id,
                "reason": reason,
                "refund": refund,
                "restock": restock,
                "notifyCustomer": notify_customer,
                "staffNote": staff_note,
            },
        )
        payload = data["orderCancel"]
        self._user_errors(payload, "orderCancelUserErrors", "userErrors")
        job = payload.get("job") or {}
        return CancelResult(job_id=job.get("id"), done=bool(job.get("done")))

    async def create_refund(
        self,
        order_id: str,
        *,
        amount: Decimal,
        gateway: str,
        idempotency_key: str,
        note: str | None = None,
        notify: bool = False,
        parent_transaction_id: str | None = None,
    ) -> ShopifyRefund:
        """``refundCreate`` for ``amount`` with ``@idempotent(key:)``: a retry with the same
        key returns the first refund instead of refunding twice."""
        if not idempotency_key:
            raise ValueError("refundCreate needs an explicit idempotency key")
        transaction: dict[str, Any] = {
            "orderId": order_id,
            "gateway": gateway,
            "kind": "REFUND",
            "amount": f"{amount:.2f}",
        }
        if parent_transaction_id:
            transaction["parentId"] = parent_transaction_id
        variables = {
            "input": {
                "orderId": order_id,
                "note": note,
                "notify": notify,
                "transactions": [transaction],
            },
            "idempotencyKey": idempotency_key,
        }
        data = await self.execute("RefundCreate", REFUND_CREATE, variables)
        payload = data["refundCreate"]
        self._user_errors(payload, "userErrors")
        refund = payload["refund"]
        return ShopifyRefund(id=refund["id"], amount=_money(refund["totalRefundedSet"]))

    async def create_fulfillment(
        self,
        fulfillment_order_ids: list[str],
        *,
        tracking: TrackingInfo,
        notify_customer: bool = True,
    ) -> ShopifyFulfillment:
        data = await self.execute(
            "FulfillmentCreate",
            FULFILLMENT_CREATE,
            {
                "fulfillment": {
                    "lineItemsByFulfillmentOrder": [
                        {"fulfillmentOrderId": i} for i in fulfillment_order_ids
                    ],
                    "trackingInfo": tracking.model_dump(exclude_none=True),
                    "notifyCustomer": notify_customer,
                },
            },
        )
        payload = data["fulfillmentCreate"]
        self._user_errors(payload, "userErrors")
        node = payload["fulfillment"]
        return ShopifyFulfillment(id=node["id"], status=node["status"])

    async def add_tags(self, resource_id: str, tags: list[str]) -> None:
        data = await self.execute("TagsAdd", TAGS_ADD, {"id": resource_id, "tags": tags})
        self._user_errors(data["tagsAdd"], "userErrors")

    async def set_note(self, order_id: str, note: str) -> None:
        data = await self.execute(
            "OrderUpdate", ORDER_UPDATE, {"input": {"id": order_id, "note": note}}
        )
        self._user_errors(data["orderUpdate"], "userErrors")


def _address(node: dict[str, Any] | None) -> ShopifyAddress | None:
    if not node or not node.get("address1") or not node.get("countryCodeV2"):
        return None  # no address, or one Printful could not ship to
    return ShopifyAddress(
        name=node.get("name") or "",
        address1=node["address1"],
        address2=node.get("address2"),
        city=node.get("city") or "",
        zip=node.get("zip") or "",
        country_code=node["countryCodeV2"],
        province_code=node.get("provinceCode"),
        phone=node.get("phone"),
    )


def _brief(node: dict[str, Any]) -> OrderBrief:
    fulfillments = sorted(node.get("fulfillments") or [], key=lambda f: str(f["createdAt"]))
    tracking = None
    for f in reversed(fulfillments):
        infos = f.get("trackingInfo") or []
        if infos and infos[0].get("number"):
            info = infos[0]
            tracking = TrackingInfo(
                company=info.get("company") or "", number=info["number"], url=info.get("url")
            )
            break
    return OrderBrief(
        id=node["id"],
        legacy_id=str(node["legacyResourceId"]),
        name=node["name"],
        email=node.get("email"),
        created_at=datetime.fromisoformat(str(node["createdAt"]).replace("Z", "+00:00")),
        financial_status=node.get("displayFinancialStatus"),
        fulfillment_status=node["displayFulfillmentStatus"],
        total=_money(node["totalPriceSet"]),
        tracking=tracking,
    )


def _search_value(value: str) -> str:
    """A search term's value, quoted so spaces, colons and quotes stay inside it."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _search_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_search_query(
    *,
    name: str | None = None,
    email: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> str:
    """Shopify search syntax for orders: one term per filter, ANDed (``created_to``
    exclusive)."""
    terms: list[str] = []
    if name is not None:
        terms.append(f"name:{_search_value(name)}")
    if email is not None:
        terms.append(f"email:{_search_value(email)}")
    if created_from is not None:
        terms.append(f"created_at:>={_search_time(created_from)}")
    if created_to is not None:
        terms.append(f"created_at:<{_search_time(created_to)}")
    if not terms:
        raise ValueError("an order search needs at least one filter")
    return " AND ".join(terms)


def order_gid(order_id: str) -> str:
    """Shopify's GraphQL id for an order given as a legacy id or a gid."""
    return order_id if order_id.startswith("gid://") else f"gid://shopify/Order/{order_id}"
