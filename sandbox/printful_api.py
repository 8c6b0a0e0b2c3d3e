"""The slice of Printful's v2 orders API AutoBiz uses.

Shaped as Printful publishes v2 (``shared/reference/fidelity/printful-v2-openapi.2025-02.json``;
``tests/sandbox/test_printful_conformance.py`` checks every answer the client reads
against it).

``draft`` → (confirm) ``pending`` → ``inprocess`` → ``fulfilled`` (shipped), plus
``failed``, ``onhold`` and ``canceled``. v2 ``DELETE`` deletes a draft or a failed order
(204, no body; the sandbox keeps it readable as ``canceled``) and answers 409 otherwise; a
confirmed order (pending, on hold) is cancelled with v1 ``DELETE /orders/{id}``, as
Printful's v2 docs direct (``{"code": 200, "result": <order>}``; 409 in production).
``PATCH`` edits an order before production; a held order whose address was the problem is
released by a corrected recipient. Orders are
addressed by id or by ``@{external_id}``; an ``external_id`` is unique per store (400 on a
second create, and 400 on a second confirmation, as Printful may answer). 4xx errors are
``{"code","result","error":{"reason","message"}}``. Shipments carry no tracking number
(``tracking_url`` only); the ``shipment_sent`` webhook's shipment carries it, and no
carrier. Production steps are
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
# v2 ``DELETE`` deletes "if it's status is draft, failed or cancelled"; a confirmed order
# (pending, on hold) is cancelled with v1 ``DELETE /orders/{id}``, as Printful's v2 docs say.
V2_DELETABLE = {"draft", "failed"}
# Confirmed again after a fix: "moved to the failed state so that the problem can be
# fixed and the order can be resubmitted" (the v2 order life cycle).
RESUBMITTABLE = {"draft", "failed"}
# PATCH: an order "being fulfilled ... can no longer be canceled or modified" (inprocess
# and later); before that it can be edited.
MODIFIABLE = {"draft", "pending", "failed", "onhold"}
RECIPIENT_REQUIRED = ("name", "address1", "city", "country_code")
Advance = Literal["start", "ship", "fail", "hold", "release"]


class AdvanceRequest(BaseModel):
    """Body of ``POST /_control/printful/orders/{id}/advance``."""

    action: Advance
    reason: str | None = None
    # What the hold or failure is about ("address": a corrected recipient releases it);
    # None: read from the reason.
    problem: Literal["address", "printfile", "billing", "transient", "other"] | None = None
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
    """A 4xx as the spec documents it; a 5xx as problem details (``ServerErrorDetails``)."""
    if exc.status >= 500:
        problem = {"type": "about:blank", "status": exc.status, "title": exc.title}
        return JSONResponse(
            {**problem, "details": exc.detail},
            status_code=exc.status,
            media_type="application/problem+json",
        )
    reason: int | str = exc.status if exc.status == 409 else exc.title.replace(" ", "")
    return JSONResponse(
        {
            "code": exc.status,
            "result": exc.detail,
            # The spec's Conflict has an integer reason; the others a name ("NotFound").
            "error": {"reason": reason, "message": exc.detail},
        },
        status_code=exc.status,
    )


def _address(recipient: dict[str, Any]) -> dict[str, Any]:
    """The recipient as Printful reads it back (``AddressReadonly``: every field present)."""
    fields = ("name", "company", "address1", "address2", "city", "state_code", "state_name")
    more = ("country_code", "country_name", "zip", "phone", "email", "tax_number")
    return {f: str(recipient.get(f) or "") for f in (*fields, *more)}


def _webhook_order(order: dict[str, Any]) -> dict[str, Any]:
    """An order as webhooks carry it (``WebhookOrderData``)."""
    return {
        "id": order["id"],
        "external_id": order["external_id"],
        "status": order["status"],
        "store_id": order["store_id"],
        "dashboard_url": f"https://www.printful.com/dashboard?order_id={order['id']}",
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


def _webhook_shipment(shipment: dict[str, Any], store_id: int) -> dict[str, Any]:
    """A shipment as ``shipment_sent`` carries it (``WebhookShipmentData``): the tracking
    number is here, and there is no carrier."""
    return {
        "id": shipment["id"],
        "status": shipment["shipment_status"],
        "store_id": store_id,
        "tracking_number": shipment["tracking_number"],
        "tracking_url": shipment["tracking_url"],
        "created_at": shipment["shipped_at"],
        "ship_date": shipment["shipped_at"][:10],
        "shipped_at": shipment["shipped_at"],
        "reshipment": False,
    }


def _listed_shipment(shipment: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    """A shipment as ``GET …/shipments`` lists it (``Shipment``): no tracking number."""
    listed = {k: v for k, v in shipment.items() if k != "tracking_number"}
    return {**listed, "order_external_id": order["external_id"]}


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
        self.address_holds: set[int] = set()  # on hold (or failed) for their address
        self._ids = itertools.count(100_000_001)

    def reset(self) -> None:
        self.orders.clear()
        self.owner.clear()
        self.shipments.clear()
        self.address_holds.clear()
        self._ids = itertools.count(100_000_001)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/orders", self._wrap(self.create), methods=["POST"]),
            Route("/v2/orders/{order_id}", self._wrap(self.get), methods=["GET"]),
            Route("/v2/orders/{order_id}", self._wrap(self.cancel), methods=["DELETE"]),
            Route("/v2/orders/{order_id}", self._wrap(self.update), methods=["PATCH"]),
            # v1, for what v2 cannot do yet: cancel a confirmed order.
            Route("/orders/{order_id}", self._wrap(self.cancel_v1), methods=["DELETE"]),
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
                    answer = await handler(request)
                    if answer is None:
                        return Response(status_code=204)
                    return JSONResponse(answer)
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
                400, "Bad Request", f"An order with external_id {external_id} already exists."
            )
        order_id = next(self._ids)
        order_items = [self._item(order_id, item) for item in items]
        count = sum(i["quantity"] for i in order_items)
        subtotal = 12.50 * count
        costs = {
            "calculation_status": "done",
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
        }
        order = {
            "id": order_id,
            "external_id": external_id,
            "store_id": int(current_account().printful_store_id),
            "shipping": body.get("shipping", "STANDARD"),
            "status": "draft",
            "created_at": _now(),
            "updated_at": _now(),
            "recipient": _address(recipient),
            "order_items": order_items,
            "costs": costs,
            "retail_costs": {
                "calculation_status": "done",
                "currency": "USD",
                **{k: "0.00" for k in ("subtotal", "discount", "shipping", "vat", "tax", "total")},
                **(body.get("retail_costs") or {}),
            },
            "_links": {
                name: {"href": f"/v2/orders/{order_id}{tail}"}
                for name, tail in (
                    ("self", ""),
                    ("order_confirmation", "/confirmation"),
                    ("order_invoices", "/invoices"),
                    ("order_items", "/order-items"),
                    ("shipments", "/shipments"),
                )
            },
        }
        if body.get("customization"):
            order["customization"] = body["customization"]
        self.orders[order_id] = order
        self.owner[order_id] = current_account().tenant
        self.shipments[order_id] = []
        self._webhook("order_created", {"order": _webhook_order(order)})
        return {"data": order}

    def _item(self, order_id: int, item: dict[str, Any]) -> dict[str, Any]:
        """An order item as the order lists it (``CatalogItemSummary``)."""
        item_id = next(self._ids)
        return {
            **item,
            "id": item_id,
            "type": "order_item",
            "source": "catalog",
            "external_id": item.get("external_id"),
            "quantity": int(item.get("quantity", 1)),
            "price": "12.50",
            "retail_price": str(item.get("retail_price") or "0.00"),
            "currency": "USD",
            "retail_currency": "USD",
            "_links": {"self": {"href": f"/v2/orders/{order_id}/order-items/{item_id}"}},
        }

    async def get(self, request: Request) -> dict[str, Any]:
        return {"data": self._find(request.path_params["order_id"])}

    async def confirm(self, request: Request) -> dict[str, Any]:
        order = self._find(request.path_params["order_id"])
        if order["status"] not in RESUBMITTABLE:
            raise PrintfulProblem(
                400,
                "Bad Request",
                f"Order is {order['status']}; only a draft or a failed order can be confirmed.",
            )
        self._touch(order, "pending")
        self._webhook("order_updated", {"order": _webhook_order(order)})
        links = order["_links"]
        return {
            "data": order,
            "_links": {
                "self": links["order_confirmation"],
                "order": links["self"],
                "order_items": links["order_items"],
                "shipments": links["shipments"],
            },
        }

    async def cancel(self, request: Request) -> None:
        """v2 ``DELETE``: 204 and no body, also for an order already cancelled. Only a
        draft or a failed order can be deleted (kept readable here, as ``canceled``); a
        confirmed one answers 409 (v1 cancels it)."""
        order = self._find(request.path_params["order_id"])
        if order["status"] == "canceled":
            return None
        if order["status"] not in V2_DELETABLE:
            why = (
                "a confirmed order is canceled with DELETE /orders/{id} (v1)"
                if order["status"] in CANCELABLE
                else "orders in production cannot be canceled"
            )
            raise PrintfulProblem(409, "Conflict", f"Order is {order['status']}: {why}.")
        self._cancel(order)
        return None

    async def cancel_v1(self, request: Request) -> dict[str, Any]:
        """v1 ``DELETE /orders/{id}``: cancels a draft, pending, failed or on-hold order
        and answers ``{"code": 200, "result": <order>}``; in production: 409."""
        order = self._find(request.path_params["order_id"])
        if order["status"] != "canceled":
            if order["status"] not in CANCELABLE:
                raise PrintfulProblem(
                    409,
                    "Conflict",
                    f"Order is {order['status']}: orders in production cannot be canceled.",
                )
            self._cancel(order)
        v1 = {k: order[k] for k in ("id", "external_id", "status", "shipping", "recipient")}
        return {"code": 200, "result": {**v1, "store": order["store_id"], "costs": order["costs"]}}

    def _cancel(self, order: dict[str, Any]) -> None:
        self._touch(order, "canceled")
        self._webhook(
            "order_canceled", {"order": _webhook_order(order), "reason": "Canceled through the API"}
        )

    async def update(self, request: Request) -> dict[str, Any]:
        """``PATCH``: a partial update (here the recipient). A held order's address fixed is
        released, as Printful's staff would once the address checks out: status
        ``pending`` and ``order_remove_hold``; a failed one stays failed until confirmed."""
        order = self._find(request.path_params["order_id"])
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise PrintfulProblem(400, "Bad Request", "Body is not valid JSON.") from None
        if order["status"] not in MODIFIABLE:
            raise PrintfulProblem(
                400,
                "Bad Request",
                f"Order is {order['status']}: it is being fulfilled and can no longer be modified.",
            )
        recipient = body.get("recipient")
        if recipient is not None:
            missing = [f for f in RECIPIENT_REQUIRED if not recipient.get(f)]
            if missing:
                raise PrintfulProblem(
                    400, "Bad Request", f"recipient is missing {', '.join(missing)}."
                )
            changed = _address(recipient) != order["recipient"]
            order["recipient"] = _address(recipient)
            if changed and order["id"] in self.address_holds:
                self.address_holds.discard(order["id"])
                if order["status"] == "onhold":
                    self._touch(order, "pending")
                    data = {"order": _webhook_order(order), "reason": "Address updated"}
                    self._webhook("order_remove_hold", data)
        order["updated_at"] = _now()
        self._webhook("order_updated", {"order": _webhook_order(order)})
        return {"data": order}

    async def list_shipments(self, request: Request) -> dict[str, Any]:
        order = self._find(request.path_params["order_id"])
        data = [_listed_shipment(s, order) for s in self.shipments[order["id"]]]
        href = f"/v2/orders/{order['id']}/shipments?limit=20&offset=0"
        return {
            "data": data,
            "_links": {"self": {"href": href}},
            "paging": {"total": len(data), "offset": 0, "limit": 20},
        }

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
            self._webhook("order_updated", {"order": _webhook_order(order)})
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
                "delivered_at": None,
                "is_reshipment": False,
                # Kept for the webhook; the shipments listing leaves it out, as Printful does.
                "tracking_number": number,
                "tracking_url": f"https://tracking.example.com/{number}",
                "tracking_events": [],
                "estimated_delivery": None,
                "departure_address": {"country_code": "US"},
                "shipment_items": [
                    {"order_item_id": i["id"], "quantity": i["quantity"]}
                    for i in order["order_items"]
                ],
            }
            self.shipments[order["id"]].append(shipment)
            self._touch(order, "fulfilled")
            self._webhook(
                "shipment_sent",
                {
                    "order": _webhook_order(order),
                    "shipment": _webhook_shipment(shipment, order["store_id"]),
                },
            )
        elif req.action == "fail":
            self._note_problem(order, req)
            self._touch(order, "failed")
            data = {"order": _webhook_order(order), "reason": req.reason or "Order failed"}
            self._webhook("order_failed", data)
        elif req.action == "hold":
            self._note_problem(order, req)
            self._touch(order, "onhold")
            data = {"order": _webhook_order(order), "reason": req.reason or "On hold"}
            self._webhook("order_put_hold", data)
        else:
            self.address_holds.discard(order["id"])
            self._touch(order, "pending")
            data = {"order": _webhook_order(order), "reason": req.reason or "Hold removed"}
            self._webhook("order_remove_hold", data)
        return order

    def _note_problem(self, order: dict[str, Any], req: AdvanceRequest) -> None:
        """An address problem is cleared by a corrected recipient (``PATCH``)."""
        if req.problem == "address" or (
            req.problem is None and "address" in (req.reason or "").lower()
        ):
            self.address_holds.add(order["id"])
        else:
            self.address_holds.discard(order["id"])
