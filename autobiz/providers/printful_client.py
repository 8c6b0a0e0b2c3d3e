"""Printful v2 orders over httpx.

``create_order`` looks the order up by ``@{external_id}`` first (our order key) and only
creates it when absent, so a retried activity — even after a create whose answer was
lost — never makes a second order. Printful has no idempotency keys; the external id is
the key. Confirmation and cancellation are made safe to repeat the same way: on a state
conflict the client reads the order and succeeds if it is already where we wanted it.

As Printful publishes v2 (``shared/reference/fidelity/printful-v2-openapi.2025-02.json``):

* errors are ``{"code", "result", "error": {"reason", "message"}}`` (5xx may be problem
  details, ``{"title", "details"}``); :func:`error_message` reads either;
* a duplicate ``external_id`` or a second confirmation may answer 400, not 409, so both are
  treated as "maybe already done" and settled by reading the order;
* ``DELETE /v2/orders/{id}`` deletes only a draft or a failed order and answers 204 with
  no body; a confirmed order (pending, on hold) is cancelled with v1 ``DELETE
  /orders/{id}``, as Printful's v2 docs direct. :meth:`PrintfulOrders.cancel_order` reads
  the order first, picks the call, and returns it as cancelled;
* a shipment (``GET …/shipments``) has no tracking number: it comes from the
  ``shipment_sent`` webhook, whose shipment has no carrier.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from autobiz.providers.errors import InvalidRequest, NotFound
from autobiz.providers.http import JsonClient, error_for_status, json_body
from autobiz.providers.hygiene import ensure_host_allowed, ensure_test_credential
from autobiz.providers.throttle import Throttle
from autobiz.settings import Settings

PROVIDER = "printful"
PAST_DRAFT = {"pending", "inprocess", "fulfilled", "partial", "onhold"}
CANCELED = "canceled"
# Confirmed but not in production: cancelled with v1 ``DELETE /orders/{id}`` (v2's DELETE
# deletes only a draft or a failed order).
CONFIRMED = frozenset({"pending", "onhold"})


class Recipient(BaseModel):
    name: str
    address1: str
    address2: str | None = None
    city: str
    state_code: str | None = None
    country_code: str
    zip: str | None = None
    email: str | None = None
    phone: str | None = None


class OrderItem(BaseModel):
    catalog_variant_id: int
    quantity: int = Field(ge=1)
    source: str = "catalog"
    external_id: str | None = None
    placements: list[dict[str, Any]] = Field(default_factory=list)
    retail_price: str | None = None


class PrintfulOrder(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    external_id: str | None = None
    status: str
    costs: dict[str, Any] = Field(default_factory=dict)
    recipient: dict[str, Any] | None = None
    created: bool = Field(default=True, description="False when an existing order was returned")


class Shipment(BaseModel):
    """A shipment as ``GET /v2/orders/{id}/shipments`` lists it. Printful's schema has no
    ``tracking_number`` (only ``tracking_url``); the field stays optional so a listing that
    does carry one is still read, but nothing may count on it."""

    model_config = ConfigDict(extra="ignore")
    id: int
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipment_status: str | None = None
    shipped_at: str | None = None


def error_message(payload: Any) -> tuple[str | None, str | None]:
    """(message, code) of a Printful error body: ``{code, result, error{reason, message}}``
    as the spec documents 4xx answers, or problem details (``title``/``detail[s]``)."""
    if not isinstance(payload, dict):
        return None, None
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message") or payload.get("result")
        reason = error.get("reason")
        return (str(message) if message else None), (str(reason) if reason is not None else None)
    if isinstance(payload.get("result"), str):
        return payload["result"], None
    detail = payload.get("details") or payload.get("detail") or payload.get("title")
    title = payload.get("title")
    return (str(detail) if detail else None), (str(title) if title else None)


class PrintfulOrders(JsonClient):
    """Async Printful client for the activities."""

    provider = PROVIDER

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        cfg = settings.printful
        ensure_test_credential(PROVIDER, "printful.api_token", cfg.api_token, settings)
        ensure_host_allowed(PROVIDER, cfg.api_base, settings)
        super().__init__(http, cfg.timeout_seconds, throttle)
        self._cfg = cfg
        self._base = cfg.api_base.rstrip("/")

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._send(
            method,
            f"{self._base}{path}",
            json=body,
            headers={
                "Authorization": f"Bearer {self._cfg.api_token.get_secret_value()}",
                "X-PF-Store-Id": self._cfg.store_id,
            },
        )
        if response.status_code == 204:
            return None  # DELETE answers no content
        payload = json_body(response)
        if response.status_code >= 400:
            message, code = error_message(payload)
            raise error_for_status(
                PROVIDER,
                response.status_code,
                message or response.reason_phrase,
                code=code,
                headers=response.headers,
            )
        return payload

    @staticmethod
    def _order(payload: Any, *, created: bool = True) -> PrintfulOrder:
        return PrintfulOrder.model_validate({**payload["data"], "created": created})

    async def get_order(self, order_id: int | str) -> PrintfulOrder:
        return self._order(await self._request("GET", f"/v2/orders/{order_id}"), created=False)

    async def find_by_external_id(self, external_id: str) -> PrintfulOrder | None:
        try:
            return await self.get_order(f"@{external_id}")
        except NotFound:
            return None

    async def create_order(
        self,
        *,
        external_id: str,
        recipient: Recipient,
        items: list[OrderItem],
        shipping: str = "STANDARD",
    ) -> PrintfulOrder:
        """A draft order for ``external_id``, or the one that already exists."""
        existing = await self.find_by_external_id(external_id)
        if existing is not None:
            return existing
        body = {
            "external_id": external_id,
            "shipping": shipping,
            "recipient": recipient.model_dump(exclude_none=True),
            "order_items": [i.model_dump(exclude_none=True) for i in items],
        }
        try:
            return self._order(await self._request("POST", "/v2/orders", body))
        except InvalidRequest:
            # 409, or the 400 Printful may answer for a duplicate external_id: lost a race
            # with a concurrent create for the same key, so return the winner; any other
            # 400 finds no order and is raised as it came.
            found = await self.find_by_external_id(external_id)
            if found is None:
                raise
            return found

    async def confirm_order(self, order_id: int | str) -> PrintfulOrder:
        """Submit a draft for fulfillment; a second confirm returns the confirmed order."""
        try:
            return self._order(await self._request("POST", f"/v2/orders/{order_id}/confirmation"))
        except InvalidRequest:
            # 409 or 400 ("already confirmed"): done if the order is past its draft.
            order = await self.get_order(order_id)
            if order.status in PAST_DRAFT:
                return order
            raise

    async def update_order(self, order_id: int | str, *, recipient: Recipient) -> PrintfulOrder:
        """``PATCH /v2/orders/{id}`` with the recipient only (a partial update): the same
        body twice leaves the same order, so a retry is safe."""
        body = {"recipient": recipient.model_dump(exclude_none=True)}
        return self._order(await self._request("PATCH", f"/v2/orders/{order_id}", body))

    async def cancel_order(self, order_id: int | str) -> PrintfulOrder:
        """Cancel before production; raises :class:`StateConflict` once it is in production.

        Printful answers the DELETE with 204 and no body, so the order is read first (its
        id, external id and costs are what the activity reports) and returned as
        ``canceled`` once the DELETE succeeded. An order already cancelled is returned
        without a second DELETE.
        """
        order = await self.get_order(order_id)
        if order.status == CANCELED:
            return order
        if order.status in CONFIRMED:
            # v2 DELETE only deletes drafts and failed orders: v1 cancels a confirmed one.
            await self._request("DELETE", f"/orders/{order.id}")
            return order.model_copy(update={"status": CANCELED})
        payload = await self._request("DELETE", f"/v2/orders/{order_id}")
        if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            return self._order(payload, created=False)  # a body, should one ever come back
        return order.model_copy(update={"status": CANCELED})

    async def shipments(self, order_id: int | str) -> list[Shipment]:
        payload = await self._request("GET", f"/v2/orders/{order_id}/shipments")
        return [Shipment.model_validate(s) for s in payload.get("data") or []]
