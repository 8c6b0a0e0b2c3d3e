"""The slice of Printful's v2 orders API AutoBiz uses.

``draft`` → (confirm) ``pending`` → ``inprocess`` → ``fulfilled`` (shipped), plus
``failed``, ``onhold`` and ``canceled``. Cancel is allowed only before production
(draft, pending, failed, onhold); afterwards 409. Orders are addressed by id or by
``@{external_id}``; an ``external_id`` is unique per store (409 on a second create).
Errors use problem details (``{"type","status","title","detail"}``). Production steps are
driven through ``POST /_control/printful/orders/{id}/advance``; each state change sends a
signed v2-style webhook (``order_created``, ``order_updated``, ``order_failed``,
``order_put_hold``, ``order_remove_hold``, ``order_canceled``, ``shipment_sent``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from autobiz.settings import Settings
from sandbox.accounts import AccountBook, acting_as, current_account
from sandbox.faults import processing_delay
from sandbox.webhooks import WebhookDispatcher

CANCELABLE = {"draft", "pending", "failed", "onhold"}
Advance = Literal["start", "ship", "fail", "hold", "release"]


class AdvanceRequest(BaseModel):
    """Body of ``POST /_control/printful/orders/{id}/advance``."""

    action: Advance
    reason: str | None = None
    carrier: str = "USPS"
    service: str = "USPS First Class"
    tracking_number: str | None = None


class PrintfulProblem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail or title


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _problem(exc: PrintfulProblem) -> Response:
    return JSONResponse(
        {"type": "about:blank", "status": exc.status, "title": exc.title, "detail": exc.detail},
        status_code=exc.status,
        media_type="application/problem+json",
    )


class PrintfulSandbox:
    def __init__(
        self, settings: Settings, dispatcher: WebhookDispatcher, accounts: AccountBook
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.accounts = accounts
        self.orders: dict[int, dict[str, Any]] = {}
        self.owner: dict[int, str] = {}  # order id -> the store's tenant
        self.shipments: dict[int, list[dict[str, Any]]] = {}
        self._ids = itertools.count(100_000_001)

    def reset(self) -> None:
        self.orders.clear()
        self.owner.clear()
        self.shipments.clear()
        self._ids = itertools.count(100_000_001)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/orders", self._wrap(self.create), methods=["POST"]),
            Route("/v2/orders/{order_id}", self._wrap(self.get), methods=["GET"]),
            Route("/v2/orders/{order_id}", self._wrap(self.cancel), methods=["DELETE"]),
            Route("/v2/orders/{order_id}/confirmation", self._wrap(self.confirm), methods=["POST"]),
            Route(
                "/v2/orders/{order_id}/shipments", self._wrap(self.list_shipments), methods=["GET"]
            ),
        ]

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            account = self.accounts.by_printful_token(auth.removeprefix("Bearer ").strip())
            if account is None or not auth.startswith("Bearer "):
                return _problem(PrintfulProblem(401, "Unauthorized", "Invalid access token"))
            try:
                await processing_delay(request)
                with acting_as(account):
                    return JSONResponse(await handler(request))
            except PrintfulProblem as exc:
                return _problem(exc)

        return endpoint

    def _mine(self) -> list[dict[str, Any]]:
        tenant = current_account().tenant
        return [o for oid, o in self.orders.items() if self.owner.get(oid) == tenant]

    def _find(self, ref: str) -> dict[str, Any]:
        """An order of the caller's store, by id or ``@external_id``."""
        for order in self._mine():
            if (ref.startswith("@") and order["external_id"] == ref[1:]) or (
                ref.isdigit() and order["id"] == int(ref)
            ):
                return order
        raise PrintfulProblem(404, "Not Found", f"Order {ref} was not found.")

    def _webhook(self, type_: str, data: dict[str, Any]) -> None:
        payload = {
            "type": type_,
            "occurred_at": _now(),
            "retries": 0,
            "store_id": int(current_account().printful_store_id),
            "data": data,
        }
        self.dispatcher.emit("printful", type_, str(uuid.uuid4()), payload, current_account())

    def _touch(self, order: dict[str, Any], status: str) -> None:
        order["status"] = status
        order["updated_at"] = _now()

    # -- API ------------------------------------------------------------------------

    async def create(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise PrintfulProblem(400, "Bad Request", "Body is not valid JSON.") from None
        recipient = body.get("recipient") or {}
        items = body.get("order_items") or []
        missing = [f for f in ("name", "address1", "city", "country_code") if not recipient.get(f)]
        if missing:
            raise PrintfulProblem(400, "Bad Request", f"recipient is missing {', '.join(missing)}.")
        if not items:
            raise PrintfulProblem(400, "Bad Request", "order_items must not be empty.")
        external_id = body.get("external_id")
        if external_id and any(o["external_id"] == external_id for o in self._mine()):
            raise PrintfulProblem(
                409, "Conflict", f"An order with external_id {external_id} already exists."
            )
        order_id = next(self._ids)
        order_items = []
        for item in items:
            order_items.append(
                {**item, "id": next(self._ids), "quantity": int(item.get("quantity", 1))}
            )
        count = sum(i["quantity"] for i in order_items)
        subtotal = 12.50 * count
        order = {
            "id": order_id,
            "external_id": external_id,
            "store_id": int(current_account().printful_store_id),
            "shipping": body.get("shipping", "STANDARD"),
            "status": "draft",
            "created_at": _now(),
            "updated_at": _now(),
            "recipient": recipient,
            "order_items": order_items,
            "customization": body.get("customization"),
            "costs": {
                "currency": "USD",
                "subtotal": f"{subtotal:.2f}",
                "discount": "0.00",
                "shipping": "4.99",
                "digitization": "0.00",
                "additional_fee": "0.00",
                "fulfillment_fee": "0.00",
                "retail_delivery_fee": "0.00",
                "vat": "0.00",
                "tax": "0.00",
                "total": f"{subtotal + 4.99:.2f}",
            },
            "retail_costs": body.get("retail_costs"),
            "_links": {
                "self": {"href": f"/v2/orders/{order_id}"},
                "shipments": {"href": f"/v2/orders/{order_id}/shipments"},
            },
        }
        self.orders[order_id] = order
        self.owner[order_id] = current_account().tenant
        self.shipments[order_id] = []
        self._webhook("order_created", {"order": order})
        return {"data": order}

    async def get(self, request: Request) -> dict[str, Any]:
        return {"data": self._find(request.path_params["order_id"])}

    async def confirm(self, request: Request) -> dict[str, Any]:
        order = self._find(request.path_params["order_id"])
        if order["status"] != "draft":
            raise PrintfulProblem(
                409, "Conflict", f"Order is {order['status']}; only a draft can be confirmed."
            )
        self._touch(order, "pending")
        self._webhook("order_updated", {"order": order})
        return {"data": order}

    async def cancel(self, request: Request) -> dict[str, Any]:
        order = self._find(request.path_params["order_id"])
        if order["status"] == "canceled":
            return {"data": order}
        if order["status"] not in CANCELABLE:
            raise PrintfulProblem(
                409,
                "Conflict",
                f"Order is {order['status']}: orders in production cannot be canceled.",
            )
        self._touch(order, "canceled")
        self._webhook("order_canceled", {"order": order})
        return {"data": order}

    async def list_shipments(self, request: Request) -> dict[str, Any]:
        order = self._find(request.path_params["order_id"])
        data = self.shipments[order["id"]]
        return {"data": data, "paging": {"total": len(data), "offset": 0, "limit": 20}}

    # -- control ----------------------------------------------------------------------

    def advance(self, ref: str, req: AdvanceRequest) -> dict[str, Any]:
        """Move an order along production (the control API's ``advance``), as the store
        that owns it."""
        owner = self.owner.get(int(ref)) if ref.isdigit() else None
        account = self.accounts.get(owner) if owner is not None else None
        if account is None:
            raise PrintfulProblem(404, "Not Found", f"Order {ref} was not found.")
        with acting_as(account):
            return self._advance(ref, req)

    def _advance(self, ref: str, req: AdvanceRequest) -> dict[str, Any]:
        order = self._find(ref)
        status = order["status"]
        allowed: dict[str, set[str]] = {
            "start": {"pending"},
            "ship": {"pending", "inprocess"},
            "fail": {"draft", "pending", "inprocess"},
            "hold": {"pending", "inprocess"},
            "release": {"onhold"},
        }
        if status not in allowed[req.action]:
            raise PrintfulProblem(409, "Conflict", f"cannot {req.action} an order that is {status}")
        if req.action == "start":
            self._touch(order, "inprocess")
            self._webhook("order_updated", {"order": order})
        elif req.action == "ship":
            if status == "pending":
                self._touch(order, "inprocess")
            number = req.tracking_number or f"9400{secrets.randbelow(10**18):018d}"
            shipment = {
                "id": next(self._ids),
                "order_id": order["id"],
                "carrier": req.carrier,
                "service": req.service,
                "shipment_status": "shipped",
                "shipped_at": _now(),
                "delivery_status": "in_transit",
                "tracking_number": number,
                "tracking_url": f"https://tracking.example.com/{number}",
                "departure_address": {"country_code": "US"},
                "shipment_items": [
                    {"order_item_id": i["id"], "quantity": i["quantity"]}
                    for i in order["order_items"]
                ],
            }
            self.shipments[order["id"]].append(shipment)
            self._touch(order, "fulfilled")
            self._webhook("shipment_sent", {"order": order, "shipment": shipment})
        elif req.action == "fail":
            self._touch(order, "failed")
            self._webhook("order_failed", {"order": order, "reason": req.reason or "Order failed"})
        elif req.action == "hold":
            self._touch(order, "onhold")
            self._webhook("order_put_hold", {"order": order, "reason": req.reason or "On hold"})
        else:
            self._touch(order, "pending")
            self._webhook("order_remove_hold", {"order": order})
        return order
