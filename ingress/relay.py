"""The relay: pending events → their workflows, each exactly once.

Per tenant (a tenant-scoped transaction, so row-level security holds), one event per
transaction:

1. claim the oldest due ``pending`` event that heads its entity's queue
   (``FOR UPDATE SKIP LOCKED``: a concurrent relay skips it, and — because the head is
   still pending — cannot take a later event of the same entity either);
2. hand it over (bounded by a timeout);
3. in the same transaction, ``UPDATE ... SET status = 'handed_over' WHERE status =
   'pending'`` and release any held events whose precondition that settled.

If the hand-off fails transiently the event stays ``pending`` with ``attempts + 1`` and a
back-off (``next_attempt_at``); after ``max_attempts`` it is dead-lettered, so nothing is
retried forever. The sweep of the ordering gate runs on every pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from autobiz.db.database import Database, TenantSession
from autobiz.errors import DatabaseError
from ingress.events import business_keys
from ingress.handoff import EventEnvelope, Handoff, HandoffSkipped, PermanentHandoffError
from ingress.metrics import WAITING, IngressMetrics
from ingress.ordering import Clock, OrderingGate
from ingress.tenants import Source

log = logging.getLogger(__name__)

TenantList = Callable[[], Awaitable[Sequence[str]]]

_CLAIM = """
SELECT e.event_id, e.tenant_id, e.source, e.provider_event_id, e.topic, e.entity_key,
       e.payload, e.payload_sha256, e.received_at, e.timeout_released, e.attempts
FROM event_store e
WHERE e.status = 'pending'
  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= %(now)s)
  AND NOT EXISTS (
      SELECT 1 FROM event_store p
      WHERE p.entity_key = e.entity_key AND p.status = 'pending' AND p.event_id < e.event_id)
ORDER BY e.event_id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""

# What is left waiting after a pass: the relay backlog gauges.
_BACKLOG = """
SELECT source, status, count(*) AS n, min(received_at) AS oldest
FROM event_store WHERE tenant_id = %s AND status = ANY(%s) GROUP BY source, status
"""


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 50
    max_attempts: int = 50
    handoff_timeout_seconds: float = 10.0
    poll_seconds: float = 1.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0


@dataclass
class PassReport:
    handed_over: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    released: int = 0


class Relay:
    def __init__(
        self,
        db: Database,
        handoff: Handoff,
        gate: OrderingGate,
        tenants: TenantList,
        *,
        metrics: IngressMetrics,
        clock: Clock,
        config: RelayConfig | None = None,
    ) -> None:
        self.db = db
        self.handoff = handoff
        self.gate = gate
        self.tenants = tenants
        self.metrics = metrics
        self.clock = clock
        self.config = config or RelayConfig()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A new pending event was stored: run a pass now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except DatabaseError as exc:
                log.warning("relay pass failed, database unavailable: %s", exc.message)
            except Exception:
                log.exception("relay pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_seconds)
            except TimeoutError:
                pass

    async def run_once(self) -> PassReport:
        report = PassReport()
        for tenant_id in await self.tenants():
            await self.run_tenant(tenant_id, report)
        return report

    async def run_tenant(self, tenant_id: str, report: PassReport | None = None) -> PassReport:
        report = report if report is not None else PassReport()
        async with self.db.tenant(tenant_id) as session:
            report.released += await self.gate.release_due(session)
        for _ in range(self.config.batch_size):
            async with self.db.tenant(tenant_id) as session:
                row = await session.fetch_one(_CLAIM, {"now": self.clock()})
                if row is None:
                    break
                await self._process(session, row, report)
        async with self.db.tenant(tenant_id) as session:
            rows = await session.fetch_all(_BACKLOG, (tenant_id, list(WAITING)))
        self.metrics.set_backlog(
            tenant_id,
            self.clock(),
            [(r["source"], r["status"], int(r["n"]), r["oldest"]) for r in rows],
        )
        return report

    async def _process(
        self, session: TenantSession, row: dict[str, Any], report: PassReport
    ) -> None:
        source = row["source"]
        try:
            envelope = await self._envelope(session, row)
            await asyncio.wait_for(
                self.handoff.deliver(envelope), timeout=self.config.handoff_timeout_seconds
            )
        except HandoffSkipped as exc:
            await self._finish(session, row, "ignored", f"hand-off skipped: {exc}")
            report.skipped += 1
            self.metrics.handoffs.labels(source=source, outcome="skipped").inc()
        except PermanentHandoffError as exc:
            await self._finish(session, row, "dead_letter", f"hand-off impossible: {exc}")
            report.dead_lettered += 1
            self.metrics.handoffs.labels(source=source, outcome="dead_letter").inc()
        except Exception as exc:
            await self._failed(session, row, exc, report)
        else:
            await self._finish(session, row, "handed_over", None)
            report.handed_over += 1
            self.metrics.handoffs.labels(source=source, outcome="handed_over").inc()
        if row["entity_key"] is not None:
            report.released += await self.gate.release_ready(session, row["entity_key"])

    async def _finish(
        self, session: TenantSession, row: dict[str, Any], status: str, reason: str | None
    ) -> None:
        await session.execute(
            "UPDATE event_store SET status = %s, status_reason = COALESCE(%s, status_reason),"
            " attempts = attempts + 1, handed_over_at = CASE WHEN %s = 'handed_over'"
            " THEN %s ELSE handed_over_at END, next_attempt_at = NULL"
            " WHERE event_id = %s AND status = 'pending'",
            (status, reason, status, self.clock(), row["event_id"]),
        )

    async def _failed(
        self, session: TenantSession, row: dict[str, Any], exc: BaseException, report: PassReport
    ) -> None:
        attempts = int(row["attempts"]) + 1
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if attempts >= self.config.max_attempts:
            await self._finish(
                session, row, "dead_letter", f"hand-off failed {attempts} times; last: {what}"
            )
            report.dead_lettered += 1
            self.metrics.handoffs.labels(source=row["source"], outcome="dead_letter").inc()
            return
        delay = min(
            self.config.backoff_base_seconds * 2 ** (attempts - 1), self.config.backoff_max_seconds
        )
        await session.execute(
            "UPDATE event_store SET attempts = %s, next_attempt_at = %s, status_reason = %s"
            " WHERE event_id = %s AND status = 'pending'",
            (
                attempts,
                self.clock() + timedelta(seconds=delay),
                f"hand-off attempt {attempts} failed: {what}",
                row["event_id"],
            ),
        )
        report.retried += 1
        self.metrics.handoffs.labels(source=row["source"], outcome="retry").inc()
        log.warning("hand-off of event %s failed (attempt %d): %s", row["event_id"], attempts, what)

    async def _envelope(self, session: TenantSession, row: dict[str, Any]) -> EventEnvelope:
        source = Source(row["source"])
        keys = business_keys(source, row["topic"], row["payload"])
        if "order_id" not in keys and row["entity_key"] is not None:
            # A Stripe charge need not carry the order id; its PaymentIntent does.
            for other in await session.fetch_all(
                "SELECT source, topic, payload FROM event_store"
                " WHERE entity_key = %s AND event_id <> %s ORDER BY event_id LIMIT 20",
                (row["entity_key"], row["event_id"]),
            ):
                found = business_keys(Source(other["source"]), other["topic"], other["payload"])
                if "order_id" in found:
                    keys["order_id"] = found["order_id"]
                    break
        return EventEnvelope(
            tenant_id=row["tenant_id"],
            event_id=row["event_id"],
            dedup_id=f"{source.value}:{row['provider_event_id']}",
            source=source,
            provider_event_id=row["provider_event_id"],
            topic=row["topic"],
            entity_key=row["entity_key"],
            order_id=keys.get("order_id"),
            payment_intent=keys.get("payment_intent"),
            payload_sha256=row["payload_sha256"],
            payload=row["payload"],
            received_at=row["received_at"],
            timeout_released=row["timeout_released"],
        )
