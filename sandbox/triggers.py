"""``POST /_control/trigger``: make a provider event happen, as ``stripe trigger`` does.

Each event is produced by the operations that make it happen at the provider, run as
the tenant's merchant account, so the webhook that follows is the one the provider would
send (its shape, its account's signature, the events around it):

- Stripe ``payment_intent.payment_failed``: a PaymentIntent confirmed with
  ``pm_card_chargeDeclined``; ``charge.refunded``: one paid with ``pm_card_visa`` and
  refunded (``--order`` names an existing PaymentIntent to refund instead);
  ``charge.dispute.created``: one paid with ``pm_card_createDispute``, which the
  cardholder then disputes.
- Shopify ``orders/paid``: a paid order placed in the tenant's shop; ``orders/cancelled``:
  that order (or ``--order``) cancelled with the Admin API's ``orderCancel``.
- Printful ``shipment_sent`` / ``order_put_hold`` / ``order_failed``: an order created and
  confirmed through the v2 API (or ``--order``), then shipped / held / failed by
  production (the control API's ``advance``).
- SendGrid ``inbound_email``: a customer's email posted to the tenant's parse URL as
  Inbound Parse does.

The provider APIs are called over HTTP on this same server, with the account's own
credentials; the webhooks go out through the dispatcher to the configured target.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import BaseModel, Field

from autobiz.providers.hygiene import ensure_host_allowed
from sandbox.accounts import SandboxAccount
from sandbox.printful_api import AdvanceRequest, PrintfulProblem
from sandbox.sendgrid_api import InboundEmail
from sandbox.shopify_api import SeedOrder
from sandbox.state import SandboxState

# event -> the provider that sends it
EVENTS: dict[str, str] = {
    "payment_intent.payment_failed": "stripe",
    "charge.refunded": "stripe",
    "charge.dispute.created": "stripe",
    "orders/paid": "shopify",
    "orders/cancelled": "shopify",
    "shipment_sent": "printful",
    "order_put_hold": "printful",
    "order_failed": "printful",
    "inbound_email": "sendgrid",
}
_PRINTFUL_ACTIONS = {"shipment_sent": "ship", "order_put_hold": "hold", "order_failed": "fail"}
_ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!,
                     $restock: Boolean!) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock) {
    job { id }
    userErrors { field message }
  }
}"""


class TriggerRequest(BaseModel):
    """Body of ``POST /_control/trigger``."""

    event: str
    tenant: str | None = Field(default=None, max_length=64)  # None: the settings' account
    order: str | None = Field(default=None, max_length=100)  # an existing object to act on
    from_email: str = "customer@example.com"
    subject: str = "Where is my order?"
    text: str = "Hello, has my order shipped yet?"


class TriggerRefused(Exception):
    """The trigger cannot run: ``status`` is the control API's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def run_trigger(state: SandboxState, base_url: str, req: TriggerRequest) -> dict[str, Any]:
    """Produce ``req.event`` and answer ``{"event", "provider", "tenant", "object"}``."""
    provider = EVENTS.get(req.event)
    if provider is None:
        raise TriggerRefused(400, f"unknown event {req.event!r}")
    tenant = req.tenant or state.settings.ingress.default_tenant
    account = state.accounts.get(tenant)
    if account is None:
        raise TriggerRefused(404, f"no account {tenant!r}")
    if provider == "sendgrid":
        obj = await _inbound(state, account, req)
    else:
        async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10.0) as http:
            if provider == "stripe":
                obj = await _stripe(http, account, req)
            elif provider == "shopify":
                obj = await _shopify(state, http, account, req)
            else:
                obj = await _printful(state, http, account, req)
    return {"event": req.event, "provider": provider, "tenant": tenant, "object": obj}


def _checked(response: httpx.Response, allowed: tuple[int, ...] = ()) -> dict[str, Any]:
    if response.status_code >= 300 and response.status_code not in allowed:
        raise TriggerRefused(409, f"the provider API refused: {response.text[:300]}")
    result: dict[str, Any] = response.json() if response.content else {}
    return result


async def _stripe(http: httpx.AsyncClient, account: SandboxAccount, req: TriggerRequest) -> str:
    headers = {"Authorization": f"Bearer {account.stripe_api_key}"}

    async def post(path: str, data: dict[str, str], allowed: tuple[int, ...] = ()) -> Any:
        return _checked(await http.post(f"/stripe/v1/{path}", data=data, headers=headers), allowed)

    if req.event == "charge.refunded" and req.order:
        await post("refunds", {"payment_intent": req.order})
        return req.order
    pm = {
        "payment_intent.payment_failed": "pm_card_chargeDeclined",
        "charge.dispute.created": "pm_card_createDispute",
    }.get(req.event, "pm_card_visa")
    pi = await post(
        "payment_intents",
        {
            "amount": "2000",
            "currency": "usd",
            "payment_method": pm,
            "metadata[autobiz_trigger]": req.event,
        },
    )
    confirmed = await post(f"payment_intents/{pi['id']}/confirm", {}, allowed=(402,))
    if req.event == "charge.refunded":
        await post("refunds", {"payment_intent": pi["id"]})
    return str(confirmed.get("id") or pi["id"])


async def _shopify(
    state: SandboxState, http: httpx.AsyncClient, account: SandboxAccount, req: TriggerRequest
) -> str:
    order_gid = req.order
    if order_gid is not None and order_gid.isdigit():
        order_gid = f"gid://shopify/Order/{order_gid}"
    if req.event == "orders/paid" or order_gid is None:
        seeded = state.shopify.seed(
            SeedOrder(shop=account.shopify_shop_domain, email=req.from_email)
        )
        order_gid = str(seeded["id"])
    if req.event == "orders/cancelled":
        version = state.settings.shopify.api_version
        answer = _checked(
            await http.post(
                f"/shopify/{account.shopify_shop_domain}/admin/api/{version}/graphql.json",
                json={
                    "query": _ORDER_CANCEL,
                    "operationName": "OrderCancel",
                    "variables": {
                        "orderId": order_gid,
                        "reason": "CUSTOMER",
                        "refund": False,
                        "restock": False,
                    },
                },
                headers={"X-Shopify-Access-Token": account.shopify_access_token},
            )
        )
        errors = ((answer.get("data") or {}).get("orderCancel") or {}).get("userErrors")
        if errors or answer.get("errors"):
            raise TriggerRefused(409, f"orderCancel refused: {errors or answer.get('errors')}")
    return order_gid


async def _printful(
    state: SandboxState, http: httpx.AsyncClient, account: SandboxAccount, req: TriggerRequest
) -> str:
    order_id = req.order
    if order_id is None:
        headers = {"Authorization": f"Bearer {account.printful_api_token}"}
        created = _checked(
            await http.post(
                "/printful/v2/orders",
                json={
                    "external_id": f"trigger-{uuid.uuid4().hex[:12]}",
                    "recipient": {
                        "name": "Test Customer",
                        "address1": "1 Main St",
                        "city": "Springfield",
                        "country_code": "US",
                        "zip": "62701",
                    },
                    "order_items": [{"catalog_variant_id": 4012, "quantity": 1}],
                },
                headers=headers,
            )
        )
        order_id = str(created["data"]["id"])
        _checked(await http.post(f"/printful/v2/orders/{order_id}/confirmation", headers=headers))
    action = _PRINTFUL_ACTIONS[req.event]
    reason = {"hold": "Awaiting address confirmation", "fail": "Printfile could not be read"}
    try:
        state.printful.advance(
            order_id,
            AdvanceRequest.model_validate({"action": action, "reason": reason.get(action)}),
        )
    except PrintfulProblem as exc:
        raise TriggerRefused(409, f"Printful refused: {exc.detail or exc.title}") from None
    return order_id


async def _inbound(state: SandboxState, account: SandboxAccount, req: TriggerRequest) -> str:
    config = state.webhooks.config
    url = config.urls.get("sendgrid_inbound") or state.sendgrid.parse_url(
        account, config.target_url
    )
    if url is None:
        raise TriggerRefused(409, "no webhook target configured")
    ensure_host_allowed("sandbox", url, state.settings)
    email = InboundEmail(
        tenant=account.tenant, from_email=req.from_email, subject=req.subject, text=req.text
    )
    sent = await state.sendgrid.deliver_inbound(email, url, account)
    return str(sent["message_id"])
