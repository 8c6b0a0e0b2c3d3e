"""Test helpers: signatures computed independently (hmac module only, never the code
under test), event bodies, an injected clock, and recording hand-offs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ingress.handoff import EventEnvelope

STRIPE_SECRET = "whsec_test_ingress"
SHOPIFY_SECRET = "shpss_test_ingress"
SHOPIFY_PREVIOUS = "shpss_test_ingress_previous"
PRINTFUL_SECRET = "pfwh_test_ingress"


def stripe_header(body: bytes, secret: str = STRIPE_SECRET, *, t: int, scheme: str = "v1") -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},{scheme}={mac}"


def shopify_header(body: bytes, secret: str = SHOPIFY_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def printful_header(body: bytes, secret: str = PRINTFUL_SECRET) -> str:
    """As Printful signs: a hex ``secret_key`` is hex-decoded into the HMAC key."""
    try:
        key = bytes.fromhex(secret) if secret else b""
    except ValueError:
        key = secret.encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def stripe_event(type_: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": type_,
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "livemode": False,
        "data": {"object": obj},
    }


def payment_intent(
    pi: str, order_id: str, status: str = "succeeded", *, tenant: str | None = None
) -> dict[str, Any]:
    """``tenant`` None: an ``order_key`` naming the order only (no tenant to check)."""
    key = f"{tenant}:{order_id}" if tenant else order_id
    return {
        "id": pi,
        "object": "payment_intent",
        "amount": 2500,
        "currency": "usd",
        "status": status,
        "metadata": {"order_key": key},
    }


def charge(pi: str, *, refunded: bool = True) -> dict[str, Any]:
    # No metadata on purpose: the order is found through the PaymentIntent's events.
    return {
        "id": f"ch_{pi[3:]}",
        "object": "charge",
        "payment_intent": pi,
        "amount": 2500,
        "amount_refunded": 2500 if refunded else 0,
        "refunded": refunded,
        "metadata": {},
    }


def shopify_order(order_id: int, *, financial_status: str = "paid") -> dict[str, Any]:
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "financial_status": financial_status,
        "cancelled_at": None,
        "total_price": "25.00",
        "currency": "USD",
        "email": "buyer@example.com",
    }


def printful_event(type_: str, order_id: int, *, retries: int = 0) -> dict[str, Any]:
    return {
        "type": type_,
        "created": 1_700_000_100,
        "retries": retries,
        "store": 1,
        "data": {
            "order": {"id": 90000 + order_id % 1000, "external_id": f"order:demo:{order_id}"},
            "shipment": {"id": 7, "tracking_number": "1Z999", "carrier": "UPS"},
        },
    }


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def unix(self) -> int:
        return int(self.now.timestamp())


@dataclass
class RecordingHandoff:
    """Delivers into a list; ``failing`` makes every delivery raise, like an unreachable
    Temporal frontend."""

    delivered: list[EventEnvelope] = field(default_factory=list)
    failing: bool = False
    attempts: int = 0

    async def deliver(self, event: EventEnvelope) -> None:
        self.attempts += 1
        if self.failing:
            raise ConnectionError("temporal frontend unreachable")
        self.delivered.append(event)


def stand_in_worker(client: Client, task_queue: str, stand_in: type) -> Worker:
    """A worker running only ``stand_in`` (a workflow registered under a real flow's
    name) for the hand-off to start and signal."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[stand_in],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
