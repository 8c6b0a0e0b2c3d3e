"""From a verified body to the row the event store keeps.

Everything here runs *after* the signature verified, on signed content wherever the
provider signs it. Identifiers that decide deduplication come from signed bytes:

* Stripe: the event's ``id`` (in the signed body);
* Shopify: only the body is signed (topic and webhook-id headers are not), so the
  dedup key is ``{topic}:{sha256(body)}``: a redelivery (same body) or a replay with
  fresh headers is a duplicate; ``X-Shopify-Webhook-Id`` is kept as the delivery id. A
  replayed body under a different topic header is caught by ``topic_contradiction``;
* Printful: the body's ``id`` when present, else ``{type}:{occurred_at}:{sha256(data)}``
  (the body's ``retries`` counter changes between redeliveries and is left out);
* SendGrid Inbound Parse (authenticated by the parse URL's credential; nothing is
  signed): the email's ``Message-ID`` header (``ingress.inbound_email``), so a
  redelivered post — or the same email posted twice — is one event.

A signed body that is not JSON, cannot be stored exactly (``1e400``, NaN, an integer
outside int64, NUL or a lone surrogate in a string, nesting deeper than ``MAX_DEPTH``),
lacks its identifiers, names an unknown topic or contradicts its topic is still stored,
as a dead letter with a reason; one whose body is not stored as JSON keeps its bytes
(``raw_base64``). It is answered 200 like any stored event, so the provider stops
retrying.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from ingress.inbound_email import TOPIC as INBOUND_TOPIC
from ingress.inbound_email import InboundRefused, dedup_id, parse_inbound
from ingress.routing import is_known
from ingress.tenants import Source

DEAD_LETTER = "dead_letter"


class InboundEvent(BaseModel):
    """One verified delivery, ready to insert."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    source: Source
    provider_event_id: str
    delivery_id: str | None
    topic: str
    entity_key: str | None
    payload: Any
    payload_sha256: str
    dead_letter_reason: str | None = None


class _Malformed(Exception):
    pass


# What a stored payload may hold. jsonb refuses NaN/Infinity, NUL and lone surrogates;
# everything downstream (bigint columns, Temporal search attributes, JavaScript UIs)
# reads integers as int64; no provider nests anywhere near 64 levels, and a bounded
# depth keeps every walk over a payload (here, psycopg, the relay) off Python's
# recursion limit.
MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _reject_constant(name: str) -> Any:
    raise _Malformed(f"non-JSON number {name}")


def _bad_str(s: str) -> bool:
    if s.isascii():
        return "\x00" in s
    return "\x00" in s or any("\ud800" <= c <= "\udfff" for c in s)


def check_storable(value: Any) -> None:
    """Raise :class:`_Malformed` unless jsonb can hold ``value`` exactly (iterative, so a
    deep value cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _bad_str(item):
                raise _Malformed("unstorable_json: string with NUL or lone surrogate")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise _Malformed("unstorable_json: integer out of int64 range")
        elif isinstance(item, float):
            if not math.isfinite(item):  # 1e400 parses to inf, which jsonb cannot hold
                raise _Malformed("unstorable_json: number out of range")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _Malformed(f"unstorable_json: nested deeper than {MAX_DEPTH}")
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def parse_json(body: bytes) -> Any:
    """The body as JSON that jsonb stores exactly, else :class:`_Malformed` with the
    reason (the caller dead-letters it, keeping the raw bytes)."""
    try:
        # Integers over 4300 digits are refused by json itself (a ValueError).
        value = json.loads(body, parse_constant=_reject_constant)
    except _Malformed:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Malformed("malformed_json") from exc
    check_storable(value)
    return value


def _clean_str(s: str) -> str:
    if s.isascii() and "\x00" not in s:
        return s
    # PostgreSQL's text holds neither NUL nor lone surrogates.
    return s.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def raw_payload(body: bytes) -> dict[str, str]:
    """What a dead letter whose body could not be stored as JSON keeps: every byte
    (base64), and a readable preview for operators."""
    return {
        "raw_base64": base64.b64encode(body).decode("ascii"),
        "raw_text": _clean_str(body[:65536].decode("utf-8", "replace")),
    }


def canonical_sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _str_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()[:200]
    return None


def dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]…``, or None where the path leaves the dicts."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# -- business keys --------------------------------------------------------------------


def order_id_from_key(key: Any) -> str | None:
    """The Shopify order id in an order key ``order:{tenant}:{id}`` (or a bare id)."""
    text = _str_id(key)
    if text is None:
        return None
    return text.rsplit(":", 1)[-1] or None


def order_id_from_metadata(obj: Any) -> str | None:
    """The order AutoBiz names in Stripe metadata: ``order_key`` (what the Stripe client
    sets), else a bare ``order_id``."""
    meta = dig(obj, "metadata")
    if not isinstance(meta, dict):
        return None
    return order_id_from_key(meta.get("order_key")) or _str_id(meta.get("order_id"))


_PRINTFUL_EXTERNAL_ID = re.compile(r"^([A-Za-z0-9]{1,20})-[0-9a-f]{8,31}$")


def order_id_from_external_id(external_id: Any) -> str | None:
    """The order in a Printful ``external_id``: ``{order}-{tenant hash}`` as OrderFulfill
    writes it (``workflows.ids.printful_external_id``), else an order key."""
    text = _str_id(external_id)
    if text is not None and (match := _PRINTFUL_EXTERNAL_ID.match(text)):
        return match.group(1)
    return order_id_from_key(external_id)


def business_keys(source: Source, topic: str, payload: Any) -> dict[str, str]:
    """``order_id`` / ``payment_intent`` found in a stored payload (either may be absent)."""
    keys: dict[str, str] = {}
    if source is Source.SHOPIFY:
        field = "order_id" if topic.startswith(("refunds/", "fulfillments/")) else "id"
        oid = _str_id(dig(payload, field))
        if oid:
            keys["order_id"] = oid
    elif source is Source.STRIPE:
        obj = dig(payload, "data", "object")
        if isinstance(obj, dict):
            pi = obj.get("id") if topic.startswith("payment_intent.") else obj.get("payment_intent")
            if (pi_id := _str_id(pi)) is not None:
                keys["payment_intent"] = pi_id
            if (oid := order_id_from_metadata(obj)) is not None:
                keys["order_id"] = oid
    elif source is Source.PRINTFUL:
        order = dig(payload, "data", "order")
        if (oid := order_id_from_external_id(dig(order, "external_id"))) is not None:
            keys["order_id"] = oid
    return keys


def entity_key(source: Source, topic: str, payload: Any) -> str | None:
    """The entity the ordering gate serialises on: an order, or a Stripe PaymentIntent
    (Stripe charges carry the PaymentIntent, not always the order)."""
    keys = business_keys(source, topic, payload)
    if source is Source.STRIPE:
        if "payment_intent" in keys:
            return f"payment_intent:{keys['payment_intent']}"
        return None
    if "order_id" in keys:
        return f"order:{keys['order_id']}"
    pf_order = _str_id(dig(payload, "data", "order", "id"))
    if source is Source.PRINTFUL and pf_order:
        return f"printful_order:{pf_order}"
    return None


def topic_contradiction(source: Source, topic: str, payload: Any) -> str | None:
    """A Shopify body whose content contradicts the (unsigned) topic header."""
    if source is not Source.SHOPIFY or not isinstance(payload, dict):
        return None
    if topic == "orders/cancelled" and "cancelled_at" in payload and not payload["cancelled_at"]:
        return "topic_body_mismatch: orders/cancelled without cancelled_at"
    status = payload.get("financial_status")
    if (
        topic == "orders/paid"
        and status is not None
        and status not in ("paid", "partially_paid", "partially_refunded", "refunded")
    ):
        return f"topic_body_mismatch: orders/paid with financial_status={status!r}"
    return None


# -- normalisation --------------------------------------------------------------------


def unstorable(event: InboundEvent, body: bytes, reason: str) -> InboundEvent:
    """``event`` as the dead letter to store when the database refused its payload: the
    raw bytes instead, keyed by the body's hash like every other dead letter."""
    return event.model_copy(
        update={
            "provider_event_id": f"sha256:{event.payload_sha256}",
            "entity_key": None,
            "payload": raw_payload(body),
            "dead_letter_reason": reason[:200],
        }
    )


def normalise(
    *,
    tenant_id: str,
    source: Source,
    body: bytes,
    headers: Mapping[str, str],
) -> InboundEvent:
    digest = hashlib.sha256(body).hexdigest()
    header_topic = headers.get("x-shopify-topic") if source is Source.SHOPIFY else None
    if header_topic is not None:
        header_topic = _clean_str(header_topic)
    delivery_id = _delivery_id(source, headers)

    def dead(reason: str, payload: Any, topic: str | None = None) -> InboundEvent:
        return InboundEvent(
            tenant_id=tenant_id,
            source=source,
            provider_event_id=f"sha256:{digest}",
            delivery_id=delivery_id,
            topic=(topic or header_topic or "unknown")[:200],
            entity_key=None,
            payload=payload,
            payload_sha256=digest,
            dead_letter_reason=reason,
        )

    if source is Source.SENDGRID:
        return _inbound_email(tenant_id, body, headers, dead, digest)
    try:
        payload = parse_json(body)
    except _Malformed as exc:
        return dead(str(exc), raw_payload(body))
    if not isinstance(payload, dict):
        return dead("malformed_json: not an object", {"raw": payload})

    try:
        topic, event_id = _identity(source, payload, header_topic, digest)
    except _MissingField as exc:
        return dead(exc.reason, payload, exc.topic)
    if not is_known(source, topic):
        return dead(f"unknown_topic: {topic}", payload, topic)
    if (contradiction := topic_contradiction(source, topic, payload)) is not None:
        return dead(contradiction, payload, topic)
    return InboundEvent(
        tenant_id=tenant_id,
        source=source,
        provider_event_id=event_id,
        delivery_id=delivery_id,
        topic=topic,
        entity_key=entity_key(source, topic, payload),
        payload=payload,
        payload_sha256=digest,
    )


def _inbound_email(
    tenant_id: str,
    body: bytes,
    headers: Mapping[str, str],
    dead: Callable[..., InboundEvent],
    digest: str,
) -> InboundEvent:
    """An Inbound Parse post: the form parsed, keyed by the email's Message-ID."""
    try:
        payload = parse_inbound(body, headers.get("content-type"))
        check_storable(payload)
    except InboundRefused as exc:
        return dead(str(exc), raw_payload(body), INBOUND_TOPIC)
    except _Malformed as exc:
        return dead(str(exc), raw_payload(body), INBOUND_TOPIC)
    message_id = payload.get("message_id")
    if not isinstance(message_id, str):
        return dead("missing_field: Message-ID", payload, INBOUND_TOPIC)
    return InboundEvent(
        tenant_id=tenant_id,
        source=Source.SENDGRID,
        provider_event_id=dedup_id(message_id),
        delivery_id=None,
        topic=INBOUND_TOPIC,
        entity_key=None,
        payload=payload,
        payload_sha256=digest,
    )


class _MissingField(Exception):
    def __init__(self, reason: str, topic: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.topic = reason, topic


def _identity(
    source: Source, payload: dict[str, Any], header_topic: str | None, digest: str
) -> tuple[str, str]:
    """The event's topic and provider event id, each where its source keeps them; a
    missing one raises :class:`_MissingField`."""
    if source is Source.STRIPE:
        topic, event_id = _str_id(payload.get("type")), _str_id(payload.get("id"))
        if topic is None or event_id is None:
            raise _MissingField("missing_field: id/type", topic)
        return topic, event_id
    if source is Source.SHOPIFY:
        topic = _str_id(header_topic)
        if topic is None:
            raise _MissingField("missing_field: X-Shopify-Topic")
        return topic, f"{topic}:{digest}"
    topic = _str_id(payload.get("type"))
    if topic is None:
        raise _MissingField("missing_field: type")
    event_id = _str_id(payload.get("id")) or _str_id(payload.get("event_id"))
    if event_id is None:  # an event without an id is keyed by its content
        created = _str_id(payload.get("created") or payload.get("occurred_at")) or "-"
        event_id = f"{topic}:{created}:{canonical_sha256(payload.get('data'))}"
    return topic, event_id


def _delivery_id(source: Source, headers: Mapping[str, str]) -> str | None:
    name = {
        Source.SHOPIFY: "x-shopify-webhook-id",
        Source.STRIPE: "x-stripe-delivery-id",
        Source.PRINTFUL: "x-pf-delivery-id",
        Source.SENDGRID: "x-request-id",
    }[source]
    value = headers.get(name)
    return _clean_str(value[:200]) if value else None
