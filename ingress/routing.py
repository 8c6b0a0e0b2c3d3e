"""The topic catalogue and where each topic goes (DESIGN §2 triggers).

Every topic the ingress accepts is listed here. A topic with a ``Route`` is handed to a
workflow; a known topic without one is stored (status ``ignored``: kept as the record
and as a precondition for the ordering gate) and not handed over; a topic not listed is
dead-lettered as ``unknown_topic``.

Workflow types, ids and signal names come from ``workflows.ids``; the business key
(the route's ``key`` kind) is taken from the event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ingress.tenants import Source
from workflows.ids import (
    INBOUND_EMAIL,
    ORDER_CANCELLATION,
    ORDER_FULFILL,
    PAYMENT_FAILURE,
    PRINTFUL_EVENT,
    SHOPIFY_EVENT,
    STRIPE_EVENT,
    WISMO,
    FlowName,
    wismo_workflow_id,
)


class Action(StrEnum):
    # client.start_workflow(..., start_signal=...): start the run if there is none,
    # otherwise signal the running one (id-conflict policy USE_EXISTING).
    SIGNAL_WITH_START = "signal_with_start"
    # Signal an existing run only; a missing run is a permanent failure (dead letter).
    SIGNAL = "signal"


class KeyKind(StrEnum):
    ORDER = "order"  # the Shopify order id
    PAYMENT_INTENT = "payment_intent"
    MESSAGE = "message"  # an email's Message-ID (SendGrid Inbound Parse)


@dataclass(frozen=True)
class Route:
    action: Action
    flow: FlowName
    signal: str
    key: KeyKind = KeyKind.ORDER
    # Only payloads this accepts are handed over; the others are recorded only.
    when: Callable[[Any], bool] | None = None
    # The workflow id of (tenant, business key) when it is not ``{prefix}:{tenant}:{key}``.
    ids: Callable[[str, str], str] | None = None

    def accepts(self, payload: Any) -> bool:
        return self.when is None or bool(self.when(payload))

    @property
    def workflow(self) -> str:
        return self.flow.type

    def workflow_id(self, tenant_id: str, key: str) -> str:
        if self.ids is not None:
            return self.ids(tenant_id, key)
        return self.flow.workflow_id(tenant_id, key)


def _authorized(payload: Any) -> bool:
    """An order created with its payment authorised (manual capture) is ready to fulfil:
    Shopify sends ``orders/paid`` only once the payment is captured."""
    return isinstance(payload, dict) and payload.get("financial_status") == "authorized"


_ORDER_SIGNAL_STRIPE = Route(Action.SIGNAL, ORDER_FULFILL, STRIPE_EVENT)
_ORDER_SIGNAL_PRINTFUL = Route(Action.SIGNAL, ORDER_FULFILL, PRINTFUL_EVENT)

ROUTES: Mapping[tuple[Source, str], Route] = {
    (Source.SHOPIFY, "orders/paid"): Route(Action.SIGNAL_WITH_START, ORDER_FULFILL, SHOPIFY_EVENT),
    (Source.SHOPIFY, "orders/create"): Route(
        Action.SIGNAL_WITH_START, ORDER_FULFILL, SHOPIFY_EVENT, when=_authorized
    ),
    (Source.SHOPIFY, "orders/cancelled"): Route(
        Action.SIGNAL_WITH_START, ORDER_CANCELLATION, SHOPIFY_EVENT
    ),
    (Source.STRIPE, "payment_intent.payment_failed"): Route(
        Action.SIGNAL_WITH_START,
        PAYMENT_FAILURE,
        STRIPE_EVENT,
        key=KeyKind.PAYMENT_INTENT,
    ),
    (Source.STRIPE, "charge.refunded"): _ORDER_SIGNAL_STRIPE,
    (Source.STRIPE, "charge.dispute.created"): _ORDER_SIGNAL_STRIPE,
    (Source.STRIPE, "charge.dispute.updated"): _ORDER_SIGNAL_STRIPE,
    (Source.STRIPE, "charge.dispute.closed"): _ORDER_SIGNAL_STRIPE,
    (Source.STRIPE, "charge.dispute.funds_withdrawn"): _ORDER_SIGNAL_STRIPE,
    (Source.STRIPE, "charge.dispute.funds_reinstated"): _ORDER_SIGNAL_STRIPE,
    # Printful v1 names and their v2 equivalents.
    (Source.PRINTFUL, "package_shipped"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "package_returned"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "shipment_sent"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "shipment_returned"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "shipment_delivered"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "order_failed"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "order_put_hold"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "order_remove_hold"): _ORDER_SIGNAL_PRINTFUL,
    (Source.PRINTFUL, "order_canceled"): _ORDER_SIGNAL_PRINTFUL,
    # A customer's email: WF05 WISMO, one run per Message-ID.
    (Source.SENDGRID, "inbound"): Route(
        Action.SIGNAL_WITH_START, WISMO, INBOUND_EMAIL, key=KeyKind.MESSAGE, ids=wismo_workflow_id
    ),
}

# Known but not handed over: kept as the record and as ordering preconditions.
RECORDED_ONLY: Mapping[Source, frozenset[str]] = {
    Source.SHOPIFY: frozenset(
        {"orders/updated", "orders/fulfilled", "refunds/create", "fulfillments/create"}
    ),
    Source.STRIPE: frozenset(
        {
            "payment_intent.created",
            "payment_intent.succeeded",
            "payment_intent.amount_capturable_updated",
            "payment_intent.canceled",
            "payment_intent.processing",
            "payment_intent.requires_action",
            "charge.succeeded",
            "charge.failed",
            "charge.captured",
            "charge.updated",
            "refund.created",
            "refund.updated",
        }
    ),
    Source.PRINTFUL: frozenset(
        {"order_created", "order_updated", "stock_updated", "product_synced", "product_updated"}
    ),
}


def route_for(source: Source, topic: str, payload: Any = None) -> Route | None:
    """The route for this event; ``payload`` given: None when the route declines it."""
    route = ROUTES.get((source, topic))
    if route is None or (payload is not None and not route.accepts(payload)):
        return None
    return route


def is_known(source: Source, topic: str) -> bool:
    return (source, topic) in ROUTES or topic in RECORDED_ONLY.get(source, frozenset())
