"""Writing verified events into ``event_store``, one tenant-scoped transaction each.

The unique index ``(tenant_id, source, provider_event_id)`` is the dedup:
``INSERT ... ON CONFLICT DO NOTHING`` makes a redelivery a no-op, and the caller still
answers 2xx. The initial status is decided in the same transaction:

* ``dead_letter`` — signed but malformed / unknown topic (with the reason), or naming
  another tenant's object (``cross_tenant: …``, plus a security incident in
  ``audit_log``; see :mod:`ingress.ownership`);
* ``ignored`` — a known topic nothing is handed to (it may settle a held event's
  precondition, so held events of its entity are re-checked right here);
* ``held`` — the ordering gate says its precondition is not met yet;
* ``pending`` — for the relay to hand over.

A small in-process memory of keys already committed lets a duplicate be answered
without touching the database (it is only filled after a commit, so a hit is always
durable); across processes the unique index remains the authority.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from autobiz.db.database import Database
from ingress.events import DEAD_LETTER, InboundEvent
from ingress.ordering import Clock, OrderingGate
from ingress.ownership import CROSS_TENANT, cross_tenant_reason, record_refusal
from ingress.routing import route_for


@dataclass(frozen=True)
class StoreResult:
    status: str  # pending | held | ignored | dead_letter | duplicate
    event_id: int | None = None
    # Set when the event named another tenant's object (dead-lettered, audit_log row).
    incident: str | None = None

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"


class RecentKeys:
    """A bounded LRU of (tenant, source, provider_event_id) known to be committed."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def seen(self, key: tuple[str, str, str]) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: tuple[str, str, str]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


class EventStore:
    def __init__(self, db: Database, gate: OrderingGate, clock: Clock) -> None:
        self.db = db
        self.gate = gate
        self.clock = clock
        self.recent = RecentKeys()

    async def insert(self, event: InboundEvent) -> StoreResult:
        key = (event.tenant_id, event.source.value, event.provider_event_id)
        if self.recent.seen(key):
            return StoreResult("duplicate")
        reason = event.dead_letter_reason
        incident: str | None = None
        async with self.db.tenant(event.tenant_id) as session:
            if reason is None and (incident := await cross_tenant_reason(session, event)):
                reason = f"{CROSS_TENANT}: {incident}"[:200]
            if reason is not None:
                status = DEAD_LETTER
            elif route_for(event.source, event.topic, event.payload) is None:
                status, reason = "ignored", "recorded only: no workflow takes this topic"
            elif pre := await self.gate.must_hold(
                session, event.source, event.topic, event.entity_key
            ):
                status, reason = "held", f"held: waiting for {pre.description}"
            else:
                status = "pending"
            event_id = await session.fetch_val(
                "INSERT INTO event_store (tenant_id, source, provider_event_id, delivery_id,"
                " topic, entity_key, payload, payload_sha256, signature_valid, status,"
                " status_reason, received_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s)"
                " ON CONFLICT (tenant_id, source, provider_event_id) DO NOTHING"
                " RETURNING event_id",
                (
                    event.tenant_id,
                    event.source.value,
                    event.provider_event_id,
                    event.delivery_id,
                    event.topic,
                    event.entity_key,
                    Jsonb(event.payload),
                    event.payload_sha256,
                    status,
                    reason,
                    self.clock(),
                ),
            )
            if event_id is not None and status == "ignored":
                await self.gate.release_ready(session, event.entity_key)
            if event_id is not None and incident is not None:
                await record_refusal(session, event, incident, int(event_id))
        self.recent.add(key)
        if event_id is None:
            return StoreResult("duplicate")
        return StoreResult(status, int(event_id), incident)
