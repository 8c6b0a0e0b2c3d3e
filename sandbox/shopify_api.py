"""The slice of Shopify's GraphQL Admin API AutoBiz uses.

Not a GraphQL engine: a hand-written resolver per operation the client sends, chosen by
``operationName`` (the client names every operation) and checked against the root field
in the document. Answers carry Shopify's shapes: ``userErrors`` for business refusals,
``extensions.cost.throttleStatus`` on every answer, ``THROTTLED`` when the cost bucket is
empty (enforced when rate limits are switched on), and ``@idempotent(key:)`` on
``refundCreate``: same key + same variables → the recorded answer; different variables →
``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``; still running → ``IDEMPOTENCY_CONCURRENT_REQUEST``.
Each shop is one account (:mod:`sandbox.accounts`): the access token must open the shop
the URL names (``/shopify/{shop}/admin/api/...``; without a shop in the URL, the token's
own shop), another shop's orders resolve to ``null``, and its webhooks carry that shop's
domain and secret. Orders are seeded through ``POST /_control/shopify/orders``; state
changes send
``X-Shopify-Hmac-Sha256``-signed webhooks (orders/create, orders/paid, orders/cancelled,
refunds/create, fulfillments/create).
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from autobiz.settings import Settings
from sandbox.accounts import AccountBook, SandboxAccount, acting_as, current_account
from sandbox.faults import COST_SCOPE_KEY, THROTTLED_SCOPE_KEY, FaultBook, processing_delay
from sandbox.idempotency import IdempotencyStore, Outcome, RecordedResponse
from sandbox.webhooks import WebhookDispatcher

GID = "gid://shopify/{kind}/{id}"
VERSION_RE = re.compile(r"^\d{4}-\d{2}$")
_IDEMPOTENT_VAR = re.compile(r"@idempotent\s*\(\s*key\s*:\s*\$(\w+)\s*\)")
_IDEMPOTENT_LIT = re.compile(r'@idempotent\s*\(\s*key\s*:\s*"([^"]*)"\s*\)')

# operationName -> (root field that must appear in the document, requested cost)
OPERATIONS: dict[str, tuple[str, int]] = {
    "GetOrder": ("order", 12),
    "SearchOrders": ("orders", 20),
    "FulfillmentOrders": ("fulfillmentOrders", 14),
    "OrderCancel": ("orderCancel", 10),
    "RefundCreate": ("refundCreate", 10),
    "FulfillmentCreate": ("fulfillmentCreate", 10),
    "TagsAdd": ("tagsAdd", 10),
    "OrderUpdate": ("orderUpdate", 10),
}


class SeedLineItem(BaseModel):
    title: str
    quantity: int = Field(default=1, ge=1)
    price: str = "10.00"
    sku: str | None = None


class SeedAddress(BaseModel):
    name: str = "Ada Lovelace"
    address1: str = "1 Analytical Way"
    address2: str | None = None
    city: str = "London"
    zip: str = "N1 9GU"
    country_code: str = Field(default="GB", pattern=r"^[A-Z]{2}$")
    province_code: str | None = None
    phone: str | None = None


class SeedOrder(BaseModel):
    """Body of ``POST /_control/shopify/orders``.

    ``payment_intent`` is the Stripe PaymentIntent that paid (``paid``) or authorised
    (``authorized``) the order: it is recorded as the order's gateway transaction
    (gateway ``stripe``, ``authorizationCode`` = the PaymentIntent id), which is how an
    order paid through a Stripe gateway names its payment.
    """

    email: str = "customer@example.com"
    currency: str = "USD"
    line_items: list[SeedLineItem] = Field(default_factory=lambda: [SeedLineItem(title="T-shirt")])
    financial_status: str = Field(default="paid", pattern="^(paid|authorized|pending)$")
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    shipping_address: SeedAddress | None = Field(default_factory=SeedAddress)
    payment_intent: str | None = Field(default=None, pattern=r"^pi_[A-Za-z0-9_]+$")
    # The shop the order is placed in (its domain); None: the settings' shop.
    shop: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _first_id() -> int:
    """Ids never repeat across sandbox restarts (Temporal keeps its history, and a
    workflow id is the order id): each second of wall clock reserves 1000 ids."""
    return 5_000_000_000_000 + (int(time.time()) - 1_700_000_000) * 1000


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": f"{amount:.2f}", "currencyCode": currency}}


# Field names of an address: stored (and REST) → GraphQL.
_ADDRESS_GRAPHQL = {
    "name": "name",
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "zip": "zip",
    "country_code": "countryCodeV2",
    "province_code": "provinceCode",
    "phone": "phone",
}


def _address(a: dict[str, Any] | None, *, graphql: bool) -> dict[str, Any] | None:
    """The stored address as REST (webhook) or GraphQL shows it."""
    if a is None:
        return None
    return {(_ADDRESS_GRAPHQL[k] if graphql else k): a[k] for k in _ADDRESS_GRAPHQL}


def _mailing_address(a: dict[str, Any]) -> dict[str, Any]:
    """A ``MailingAddressInput`` (orderUpdate's ``shippingAddress``) as stored."""
    name = " ".join(str(a[k]) for k in ("firstName", "lastName") if a.get(k))
    return {
        "name": name or a.get("name") or "",
        "address1": a.get("address1") or "",
        "address2": a.get("address2"),
        "city": a.get("city") or "",
        "zip": a.get("zip") or "",
        "country_code": a.get("countryCode") or "",
        "province_code": a.get("provinceCode"),
        "phone": a.get("phone"),
    }


def _seed_transactions(seed: SeedOrder, total: Decimal) -> list[dict[str, Any]]:
    if seed.payment_intent is None or seed.financial_status == "pending":
        return []
    kind = "AUTHORIZATION" if seed.financial_status == "authorized" else "SALE"
    return [
        {
            "kind": kind,
            "status": "SUCCESS",
            "gateway": "stripe",
            "authorization_code": seed.payment_intent,
            "amount": total,
        }
    ]


_TERM = re.compile(r'(\w+):(>=|<=|>|<)?("(?:[^"\\]|\\.)*"|\S+)')


class _GraphQLRefusal(ValueError):
    """A query Shopify answers with a top-level error (a bad argument)."""


def _search_terms(query: str) -> list[tuple[str, str, str]]:
    """``field:[op]value`` terms of Shopify's search syntax (``AND`` and spaces join)."""
    terms = []
    for m in _TERM.finditer(query):
        value = m.group(3)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        terms.append((m.group(1).lower(), m.group(2) or "", value))
    return terms


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _matches(o: dict[str, Any], term: tuple[str, str, str]) -> bool:
    field, op, value = term
    if field == "name":
        return str(o["name"]).lower() == value.lower()
    if field == "email":
        return str(o["email"] or "").lower() == value.lower()
    if field == "created_at":
        bound = _parse_time(value)
        created = _parse_time(o["created_at"])
        if bound is None or created is None:
            return False
        return {
            ">=": created >= bound,
            ">": created > bound,
            "<=": created <= bound,
            "<": created < bound,
            "": created == bound,
        }[op]
    return True  # Shopify ignores a field it does not filter on


def _gid_id(gid: str) -> int | None:
    try:
        return int(str(gid).rsplit("/", 1)[-1])
    except ValueError:
        return None


class ShopifySandbox:
    def __init__(
        self,
        settings: Settings,
        dispatcher: WebhookDispatcher,
        faults: FaultBook,
        accounts: AccountBook,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.faults = faults
        self.accounts = accounts
        self.idempotency = IdempotencyStore()
        self.orders: dict[int, dict[str, Any]] = {}
        self.owner: dict[int, str] = {}  # order id -> the shop's tenant
        self._ids = itertools.count(_first_id())

    def reset(self) -> None:
        self.idempotency.reset()
        self.orders.clear()
        self.owner.clear()
        self._ids = itertools.count(_first_id())

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/{shop}/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
        ]

    # -- seeding and webhooks -------------------------------------------------------

    def seed(self, seed: SeedOrder) -> dict[str, Any]:
        account = self.accounts.by_shop(seed.shop)
        if account is None:
            raise LookupError(f"no shop {seed.shop!r} in the sandbox")
        with acting_as(account):
            return self._seed(seed)

    def _seed(self, seed: SeedOrder) -> dict[str, Any]:
        order_id = next(self._ids)
        items = []
        total = Decimal("0")
        for item in seed.line_items:
            price = Decimal(item.price)
            total += price * item.quantity
            items.append(
                {
                    "id": next(self._ids),
                    "title": item.title,
                    "quantity": item.quantity,
                    "sku": item.sku,
                    "price": price,
                }
            )
        fo_id = next(self._ids)
        order = {
            "id": order_id,
            "name": f"#{1000 + self._shop_order_count() + 1}",
            "email": seed.email,
            "currency": seed.currency,
            "total": total,
            "refunded": Decimal("0"),
            "financial_status": seed.financial_status.upper(),
            "fulfillment_status": "UNFULFILLED",
            "cancelled_at": None,
            "cancel_reason": None,
            "tags": list(seed.tags),
            "note": seed.note,
            "line_items": items,
            "refunds": [],
            "fulfillments": [],
            "created_at": _now(),
            "shipping_address": seed.shipping_address.model_dump()
            if seed.shipping_address
            else None,
            "transactions": _seed_transactions(seed, total),
            "fulfillment_orders": [
                {
                    "id": fo_id,
                    "status": "OPEN",
                    "line_items": [
                        {
                            "id": next(self._ids),
                            "line_item_id": li["id"],
                            "total": li["quantity"],
                            "remaining": li["quantity"],
                        }
                        for li in items
                    ],
                }
            ],
        }
        self.orders[order_id] = order
        self.owner[order_id] = current_account().tenant
        self._webhook("orders/create", self._rest_order(order))
        if order["financial_status"] == "PAID":
            self._webhook("orders/paid", self._rest_order(order))
        return {
            "id": GID.format(kind="Order", id=order_id),
            "legacy_id": order_id,
            "name": order["name"],
            "shop": current_account().shopify_shop_domain,
        }

    def _shop_order_count(self) -> int:
        tenant = current_account().tenant
        return sum(1 for t in self.owner.values() if t == tenant)

    def _webhook(self, topic: str, payload: dict[str, Any]) -> None:
        self.dispatcher.emit("shopify", topic, str(uuid.uuid4()), payload, current_account())

    @staticmethod
    def _rest_order(o: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": o["id"],
            "admin_graphql_api_id": GID.format(kind="Order", id=o["id"]),
            "name": o["name"],
            "email": o["email"],
            "currency": o["currency"],
            "total_price": f"{o['total']:.2f}",
            "financial_status": o["financial_status"].lower(),
            "fulfillment_status": None if o["fulfillment_status"] == "UNFULFILLED" else "fulfilled",
            "cancelled_at": o["cancelled_at"],
            "cancel_reason": o["cancel_reason"],
            "tags": ", ".join(o["tags"]),
            "note": o["note"],
            "created_at": o["created_at"],
            "updated_at": _now(),
            "shipping_address": _address(o.get("shipping_address"), graphql=False),
            "payment_gateway_names": sorted({t["gateway"] for t in o.get("transactions", [])}),
            "line_items": [
                {
                    "id": li["id"],
                    "admin_graphql_api_id": GID.format(kind="LineItem", id=li["id"]),
                    "title": li["title"],
                    "quantity": li["quantity"],
                    "sku": li["sku"],
                    "price": f"{li['price']:.2f}",
                }
                for li in o["line_items"]
            ],
        }

    # -- the endpoint ---------------------------------------------------------------

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        bucket = self.faults.buckets["shopify"]
        bucket.refill()
        enforced = self.faults.limits.enabled
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": bucket.capacity,
                "currentlyAvailable": round(bucket.tokens if enforced else bucket.capacity, 3),
                "restoreRate": bucket.rate,
            },
        }

    async def graphql(self, request: Request) -> Response:
        account = self.accounts.by_shopify_token(
            request.headers.get("x-shopify-access-token", ""), request.path_params.get("shop")
        )
        if account is None:
            return JSONResponse(
                {
                    "errors": "[API] Invalid API key or access token "
                    "(unrecognized login or wrong password)"
                },
                status_code=401,
            )
        if not VERSION_RE.match(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        with acting_as(account):
            return await self._graphql(request, account)

    async def _graphql(self, request: Request, account: SandboxAccount) -> Response:
        try:
            payload = json.loads(await request.body())
            query = str(payload["query"])
            variables = dict(payload.get("variables") or {})
            op = str(payload.get("operationName") or "")
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"errors": [{"message": "Invalid JSON or missing query"}]}, status_code=400
            )
        if op not in OPERATIONS or OPERATIONS[op][0] not in query:
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": f"sandbox does not implement operation {op!r}",
                            "extensions": {"code": "UNSUPPORTED"},
                        }
                    ]
                }
            )
        cost = OPERATIONS[op][1]
        request.scope[COST_SCOPE_KEY] = cost
        if self.faults.limits.enabled and self.faults.buckets["shopify"].take(cost) > 0:
            request.scope[THROTTLED_SCOPE_KEY] = True
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {"cost": self._cost(cost, None)},
                }
            )
        key = self._idempotency_key(query, variables)
        if key is None:
            await processing_delay(request)
            try:
                data = self._resolve(op, variables)
            except _GraphQLRefusal as refusal:
                return JSONResponse(
                    {
                        "errors": [
                            {"message": str(refusal), "extensions": {"code": "BAD_REQUEST"}}
                        ],
                        "extensions": {"cost": self._cost(cost, None)},
                    }
                )
            return JSONResponse({"data": data, "extensions": {"cost": self._cost(cost, cost)}})
        fingerprint = (
            json.dumps(
                {k: v for k, v in variables.items() if k != "idempotencyKey"}, sort_keys=True
            )
            + op
        )
        decision = self.idempotency.begin(account.shopify_shop_domain, key, fingerprint)
        if decision.outcome in (Outcome.MISMATCH, Outcome.IN_FLIGHT):
            code = (
                "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
                if decision.outcome is Outcome.MISMATCH
                else "IDEMPOTENCY_CONCURRENT_REQUEST"
            )
            return JSONResponse(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": f"idempotency key {key!r}: {code.lower()}",
                            "extensions": {"code": code},
                        }
                    ],
                    "extensions": {"cost": self._cost(cost, None)},
                }
            )
        if decision.outcome is Outcome.REPLAY and decision.response is not None:
            return JSONResponse(decision.response.body, status_code=decision.response.status)
        try:
            await processing_delay(request)
            body = {
                "data": self._resolve(op, variables),
                "extensions": {"cost": self._cost(cost, cost)},
            }
        except BaseException:
            self.idempotency.abandon(account.shopify_shop_domain, key)
            raise
        self.idempotency.finish(account.shopify_shop_domain, key, RecordedResponse(200, body))
        return JSONResponse(body)

    @staticmethod
    def _idempotency_key(query: str, variables: dict[str, Any]) -> str | None:
        match = _IDEMPOTENT_VAR.search(query)
        if match:
            value = variables.get(match.group(1))
            return str(value) if value else None
        literal = _IDEMPOTENT_LIT.search(query)
        return literal.group(1) if literal else None

    # -- resolvers -----------------------------------------------------------------

    def _resolve(self, op: str, v: dict[str, Any]) -> dict[str, Any]:
        resolver = {
            "GetOrder": self._get_order,
            "SearchOrders": self._search_orders,
            "FulfillmentOrders": self._fulfillment_orders,
            "OrderCancel": self._order_cancel,
            "RefundCreate": self._refund_create,
            "FulfillmentCreate": self._fulfillment_create,
            "TagsAdd": self._tags_add,
            "OrderUpdate": self._order_update,
        }[op]
        return resolver(v)

    def _order(self, gid: Any) -> dict[str, Any] | None:
        legacy = _gid_id(str(gid))
        if legacy is None or self.owner.get(legacy) != current_account().tenant:
            return None
        return self.orders.get(legacy)

    def _order_view(self, o: dict[str, Any]) -> dict[str, Any]:
        cur = o["currency"]
        if o["cancelled_at"]:
            financial = o["financial_status"]
        elif o["refunded"] >= o["total"] and o["refunded"] > 0:
            financial = "REFUNDED"
        elif o["refunded"] > 0:
            financial = "PARTIALLY_REFUNDED"
        else:
            financial = o["financial_status"]
        return {
            "id": GID.format(kind="Order", id=o["id"]),
            "legacyResourceId": str(o["id"]),
            "name": o["name"],
            "email": o["email"],
            "createdAt": o["created_at"],
            "cancelledAt": o["cancelled_at"],
            "cancelReason": o["cancel_reason"],
            "displayFinancialStatus": financial,
            "displayFulfillmentStatus": o["fulfillment_status"],
            "tags": list(o["tags"]),
            "note": o["note"],
            "currencyCode": cur,
            "totalPriceSet": _money(o["total"], cur),
            "totalRefundedSet": _money(o["refunded"], cur),
            "shippingAddress": _address(o.get("shipping_address"), graphql=True),
            "transactions": [
                {
                    "kind": t["kind"],
                    "status": t["status"],
                    "gateway": t["gateway"],
                    "authorizationCode": t["authorization_code"],
                    "amountSet": _money(t["amount"], cur),
                }
                for t in o.get("transactions", [])
            ],
            "lineItems": {
                "nodes": [
                    {
                        "id": GID.format(kind="LineItem", id=li["id"]),
                        "title": li["title"],
                        "quantity": li["quantity"],
                        "sku": li["sku"],
                        "originalUnitPriceSet": _money(li["price"], cur),
                    }
                    for li in o["line_items"]
                ]
            },
        }

    def _get_order(self, v: dict[str, Any]) -> dict[str, Any]:
        o = self._order(v.get("id"))
        return {"order": self._order_view(o) if o else None}

    def _search_orders(self, v: dict[str, Any]) -> dict[str, Any]:
        """``orders(first:, query:, sortKey: CREATED_AT, reverse:)``: the shop's orders
        matching every term of the search syntax the client sends (``name:``, ``email:``,
        ``created_at:`` with ``>= > <= <``), newest first when ``reverse``."""
        try:
            first = int(v.get("first") or 0)
        except (TypeError, ValueError):
            first = 0
        if not 1 <= first <= 250:
            raise _GraphQLRefusal("first must be between 1 and 250")
        terms = _search_terms(str(v.get("query") or ""))
        tenant = current_account().tenant
        mine = [o for oid, o in self.orders.items() if self.owner.get(oid) == tenant]
        hits = [o for o in mine if all(_matches(o, term) for term in terms)]
        hits.sort(key=lambda o: (o["created_at"], o["id"]), reverse=True)
        return {"orders": {"nodes": [self._search_view(o) for o in hits[:first]]}}

    def _search_view(self, o: dict[str, Any]) -> dict[str, Any]:
        view = self._order_view(o)
        view["fulfillments"] = [
            {
                "id": GID.format(kind="Fulfillment", id=f["id"]),
                "createdAt": f.get("created_at") or o["created_at"],
                "trackingInfo": [
                    {
                        "company": f["tracking"].get("company"),
                        "number": f["tracking"].get("number"),
                        "url": f["tracking"].get("url"),
                    }
                ]
                if f["tracking"].get("number")
                else [],
            }
            for f in o["fulfillments"]
        ]
        return view

    def _fulfillment_orders(self, v: dict[str, Any]) -> dict[str, Any]:
        o = self._order(v.get("orderId"))
        if o is None:
            return {"order": None}
        nodes = [
            {
                "id": GID.format(kind="FulfillmentOrder", id=fo["id"]),
                "status": fo["status"],
                "lineItems": {
                    "nodes": [
                        {
                            "id": GID.format(kind="FulfillmentOrderLineItem", id=li["id"]),
                            "totalQuantity": li["total"],
                            "remainingQuantity": li["remaining"],
                        }
                        for li in fo["line_items"]
                    ]
                },
            }
            for fo in o["fulfillment_orders"]
        ]
        return {
            "order": {
                "id": GID.format(kind="Order", id=o["id"]),
                "fulfillmentOrders": {"nodes": nodes},
            }
        }

    def _order_cancel(self, v: dict[str, Any]) -> dict[str, Any]:
        o = self._order(v.get("orderId"))
        errors: list[dict[str, Any]] = []
        if o is None:
            errors.append(
                {"field": ["orderId"], "message": "Order does not exist", "code": "NOT_FOUND"}
            )
        elif o["cancelled_at"]:
            errors.append(
                {
                    "field": ["orderId"],
                    "message": "Order has already been cancelled",
                    "code": "INVALID",
                }
            )
        if errors:
            return {
                "orderCancel": {
                    "job": None,
                    "orderCancelUserErrors": errors,
                    "userErrors": [{k: e[k] for k in ("field", "message")} for e in errors],
                }
            }
        assert o is not None
        o["cancelled_at"] = _now()
        o["cancel_reason"] = str(v.get("reason") or "OTHER").lower()
        if v.get("staffNote"):
            o["note"] = str(v["staffNote"])
        self._webhook("orders/cancelled", self._rest_order(o))
        job = {"id": GID.format(kind="Job", id=uuid.uuid4()), "done": True}
        return {"orderCancel": {"job": job, "orderCancelUserErrors": [], "userErrors": []}}

    def _refund_create(self, v: dict[str, Any]) -> dict[str, Any]:
        data = dict(v.get("input") or {})
        o = self._order(data.get("orderId"))
        if o is None:
            return {
                "refundCreate": {
                    "refund": None,
                    "order": None,
                    "userErrors": [{"field": ["orderId"], "message": "Order does not exist"}],
                }
            }
        try:
            amount = sum(
                (Decimal(str(t.get("amount", "0"))) for t in data.get("transactions") or []),
                Decimal("0"),
            )
        except InvalidOperation:
            return {
                "refundCreate": {
                    "refund": None,
                    "order": None,
                    "userErrors": [{"field": ["transactions"], "message": "Amount is invalid"}],
                }
            }
        refundable = o["total"] - o["refunded"]
        if amount <= 0 or amount > refundable:
            msg = (
                f"Refund amount {amount:.2f} exceeds the refundable amount {refundable:.2f}"
                if amount > 0
                else "Refund amount must be greater than zero"
            )
            return {
                "refundCreate": {
                    "refund": None,
                    "order": None,
                    "userErrors": [{"field": ["transactions"], "message": msg}],
                }
            }
        refund_id = next(self._ids)
        o["refunded"] += amount
        refund = {"id": refund_id, "amount": amount, "note": data.get("note"), "created_at": _now()}
        o["refunds"].append(refund)
        self._webhook(
            "refunds/create",
            {
                "id": refund_id,
                "order_id": o["id"],
                "note": refund["note"],
                "created_at": refund["created_at"],
                "admin_graphql_api_id": GID.format(kind="Refund", id=refund_id),
                "transactions": [
                    {
                        "amount": f"{amount:.2f}",
                        "kind": "refund",
                        "status": "success",
                        "currency": o["currency"],
                    }
                ],
            },
        )
        view = {
            "id": GID.format(kind="Refund", id=refund_id),
            "createdAt": refund["created_at"],
            "note": refund["note"],
            "totalRefundedSet": _money(amount, o["currency"]),
        }
        return {
            "refundCreate": {
                "refund": view,
                "order": {"id": GID.format(kind="Order", id=o["id"])},
                "userErrors": [],
            }
        }

    def _fulfillment_create(self, v: dict[str, Any]) -> dict[str, Any]:
        data = dict(v.get("fulfillment") or {})
        groups = data.get("lineItemsByFulfillmentOrder") or []
        tracking = dict(data.get("trackingInfo") or {})

        def fail(message: str) -> dict[str, Any]:
            return {
                "fulfillmentCreate": {
                    "fulfillment": None,
                    "userErrors": [{"field": ["fulfillment"], "message": message}],
                }
            }

        if not groups:
            return fail("lineItemsByFulfillmentOrder must not be empty")
        targets = []
        for group in groups:
            fo_id = _gid_id(str(group.get("fulfillmentOrderId")))
            found = [
                (o, fo)
                for oid, o in self.orders.items()
                if self.owner.get(oid) == current_account().tenant
                for fo in o["fulfillment_orders"]
                if fo["id"] == fo_id
            ]
            if not found:
                return fail(f"Fulfillment order {group.get('fulfillmentOrderId')} does not exist.")
            order, fo = found[0]
            if fo["status"] != "OPEN" or order["cancelled_at"]:
                return fail(
                    f"Fulfillment order {fo_id} has an unfulfillable "
                    f"status= {fo['status'].lower()}."
                )
            targets.append((order, fo))
        fulfillment_id = next(self._ids)
        for order, fo in targets:
            fo["status"] = "CLOSED"
            for li in fo["line_items"]:
                li["remaining"] = 0
            order["fulfillment_status"] = "FULFILLED"
            order["fulfillments"].append(
                {"id": fulfillment_id, "tracking": tracking, "created_at": _now()}
            )
            self._webhook(
                "fulfillments/create",
                {
                    "id": fulfillment_id,
                    "order_id": order["id"],
                    "status": "success",
                    "admin_graphql_api_id": GID.format(kind="Fulfillment", id=fulfillment_id),
                    "tracking_company": tracking.get("company"),
                    "tracking_number": tracking.get("number"),
                    "tracking_url": tracking.get("url"),
                    "created_at": _now(),
                },
            )
        view = {
            "id": GID.format(kind="Fulfillment", id=fulfillment_id),
            "status": "SUCCESS",
            "trackingInfo": [
                {
                    "company": tracking.get("company"),
                    "number": tracking.get("number"),
                    "url": tracking.get("url"),
                }
            ],
        }
        return {"fulfillmentCreate": {"fulfillment": view, "userErrors": []}}

    def _tags_add(self, v: dict[str, Any]) -> dict[str, Any]:
        o = self._order(v.get("id"))
        if o is None:
            return {
                "tagsAdd": {
                    "node": None,
                    "userErrors": [{"field": ["id"], "message": "Order does not exist"}],
                }
            }
        for tag in v.get("tags") or []:
            if tag not in o["tags"]:
                o["tags"].append(str(tag))
        return {"tagsAdd": {"node": {"id": GID.format(kind="Order", id=o["id"])}, "userErrors": []}}

    def _order_update(self, v: dict[str, Any]) -> dict[str, Any]:
        data = dict(v.get("input") or {})
        o = self._order(data.get("id"))
        if o is None:
            return {
                "orderUpdate": {
                    "order": None,
                    "userErrors": [{"field": ["id"], "message": "Order does not exist"}],
                }
            }
        if "note" in data:
            o["note"] = data["note"]
        if data.get("shippingAddress") is not None:
            o["shipping_address"] = _mailing_address(data["shippingAddress"])
        return {
            "orderUpdate": {
                "order": {"id": GID.format(kind="Order", id=o["id"]), "note": o["note"]},
                "userErrors": [],
            }
        }
