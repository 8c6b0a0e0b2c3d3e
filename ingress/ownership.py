"""Does a verified event name an object of another tenant? (DESIGN §5, §7)

The tenant of an event is the one whose secret verified its signature. An event can
still *name* an object that carries another tenant's binding: a Stripe object whose
``order_key`` metadata is ``{other tenant}:{order}``, or a Printful order whose
``external_id`` was derived for another tenant. Such an event never starts or signals a
flow: it is stored as a dead letter (``cross_tenant: …``) and recorded as a security
incident in the verified tenant's ``audit_log``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from autobiz.db.database import TenantSession
from ingress.events import InboundEvent, business_keys, dig
from ingress.tenants import Source
from kernel.codes import ErrorCode

CROSS_TENANT = "cross_tenant"
_PRINTFUL_EXTERNAL_ID = re.compile(r"^([A-Za-z0-9]{1,20})-([0-9a-f]{8,31})$")


def _stripe_owner(payload: Any) -> str | None:
    """The tenant part of ``order_key`` (``{tenant}:{order}``) on the event's object."""
    key = dig(payload, "data", "object", "metadata", "order_key")
    if not isinstance(key, str):
        return None
    key = key.removeprefix("order:")
    if ":" not in key:
        return None
    tenant, _, _ = key.rpartition(":")
    return tenant or None


def _printful_foreign(payload: Any, tenant_id: str) -> str | None:
    """``external_id`` is ``{order}-{sha256(tenant:order)}`` (workflows.ids): one whose
    hash is not this tenant's was made for another tenant."""
    external_id = dig(payload, "data", "order", "external_id")
    if not isinstance(external_id, str):
        return None
    match = _PRINTFUL_EXTERNAL_ID.match(external_id)
    if match is None:
        return None
    order, digest = match.groups()
    if len(order) >= 20:  # the order id was cut to fit: the hash cannot be recomputed
        return None
    ours = hashlib.sha256(f"{tenant_id}:{order}".encode()).hexdigest()
    return None if ours.startswith(digest) else f"external_id {external_id} is not this tenant's"


def foreign_reason(source: Source, tenant_id: str, payload: Any) -> str | None:
    """Why this event (verified as ``tenant_id``'s) names another tenant's object, or None."""
    if source is Source.STRIPE:
        owner = _stripe_owner(payload)
        if owner is not None and owner != tenant_id:
            return "order_key names another tenant"
    elif source is Source.PRINTFUL:
        return _printful_foreign(payload, tenant_id)
    return None


# business key -> the kind of provider object id it is (ids unique across all accounts)
_CLAIMED = {
    (Source.SHOPIFY, "order_id"): "shopify_order",
    (Source.STRIPE, "payment_intent"): "stripe_payment_intent",
}


async def cross_tenant_reason(session: TenantSession, event: InboundEvent) -> str | None:
    """Why ``event`` must not reach a flow of its tenant, or None. Claims the ids it names
    for the tenant on first sight (``claim_provider_object``, migration 0007)."""
    reason = foreign_reason(event.source, event.tenant_id, event.payload)
    if reason is not None:
        return reason
    for name, value in sorted(business_keys(event.source, event.topic, event.payload).items()):
        kind = _CLAIMED.get((event.source, name))
        if kind is None:
            continue
        ours = await session.fetch_val("SELECT claim_provider_object(%s, %s)", (kind, value))
        if ours is False:
            return f"{kind} {value} belongs to another tenant"
    return None


async def record_refusal(
    session: TenantSession, event: InboundEvent, reason: str, event_id: int | None
) -> None:
    """The incident, in the same transaction as the dead letter."""
    detail = {
        "source": event.source.value,
        "topic": event.topic,
        "reason": reason,
        "provider_event_id": event.provider_event_id,
        "event_id": event_id,
    }
    await session.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
        "VALUES (%s, %s, %s, 'refused', %s)",
        (
            event.tenant_id,
            f"ingress:{event.source.value}",
            f"security.{ErrorCode.CROSS_TENANT_REFUSED}",
            json.dumps(detail),
        ),
    )
