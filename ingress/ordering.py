"""The ordering gate: hold an event until its precondition holds, release in order.

A precondition names events that must already be *settled* for the same entity
(``handed_over``: the workflow has it; ``ignored``: a record-only event is stored):

* Stripe ``charge.refunded`` / ``charge.dispute.*`` wait for the capture
  (``payment_intent.succeeded`` or ``charge.captured``) of the same PaymentIntent;
* Printful shipment and failure events wait for the Shopify event that started the
  order's OrderFulfill (``orders/paid``, or ``orders/create`` of an authorised order) to
  be handed over (the run they signal exists from then on).

An event is held when it is stored before its precondition. It is released (back to
``pending``, in event order) as soon as the precondition holds — checked in the same
transaction that settles the precondition event, and again by the relay's periodic
sweep — or, after ``timeout`` seconds, released anyway with ``timeout_released = true``.
An optional ``PreconditionProbe`` re-checks the precondition against the provider at
that point; its answer is recorded in ``status_reason``. Time comes from the injected
clock, never from the database, so tests drive it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from autobiz.db.database import TenantSession
from ingress.metrics import IngressMetrics
from ingress.tenants import Source

Clock = Callable[[], datetime]

SETTLED = ("handed_over", "ignored")


@dataclass(frozen=True)
class Precondition:
    requires: frozenset[tuple[Source, str]]
    description: str
    # The statuses of a required event that settle it.
    statuses: tuple[str, ...] = SETTLED


_CAPTURED = Precondition(
    frozenset({(Source.STRIPE, "payment_intent.succeeded"), (Source.STRIPE, "charge.captured")}),
    "the capture of the same PaymentIntent",
)
_ORDER_STARTED = Precondition(
    frozenset({(Source.SHOPIFY, "orders/paid"), (Source.SHOPIFY, "orders/create")}),
    "the Shopify event that starts the order's fulfilment, handed over",
    # An orders/create that was only recorded (not authorised) started nothing.
    statuses=("handed_over",),
)

GATES: Mapping[tuple[Source, str], Precondition] = {
    (Source.STRIPE, "charge.refunded"): _CAPTURED,
    **{
        (Source.STRIPE, f"charge.dispute.{sub}"): _CAPTURED
        for sub in ("created", "updated", "closed", "funds_withdrawn", "funds_reinstated")
    },
    **{
        (Source.PRINTFUL, topic): _ORDER_STARTED
        for topic in (
            "package_shipped",
            "package_returned",
            "shipment_sent",
            "shipment_returned",
            "shipment_delivered",
            "order_failed",
            "order_put_hold",
            "order_remove_hold",
            "order_canceled",
        )
    },
}


class PreconditionProbe(Protocol):
    async def holds(self, event: dict[str, Any]) -> bool | None:
        """Ask the provider whether the precondition holds (None: cannot tell)."""
        ...


def precondition_for(source: Source | str, topic: str) -> Precondition | None:
    return GATES.get((Source(source), topic))


class OrderingGate:
    def __init__(
        self,
        *,
        timeout_seconds: float,
        clock: Clock,
        metrics: IngressMetrics,
        probe: PreconditionProbe | None = None,
    ) -> None:
        self.timeout = timedelta(seconds=timeout_seconds)
        self.clock = clock
        self.metrics = metrics
        self.probe = probe

    async def satisfied(self, session: TenantSession, pre: Precondition, entity: str) -> bool:
        pairs = sorted(pre.requires)
        return bool(
            await session.fetch_val(
                "SELECT EXISTS (SELECT 1 FROM event_store WHERE entity_key = %s"
                " AND status = ANY(%s) AND (source, topic) IN ("
                + ", ".join(["(%s, %s)"] * len(pairs))
                + "))",
                [entity, list(pre.statuses), *[v for pair in pairs for v in pair]],
            )
        )

    async def must_hold(
        self, session: TenantSession, source: Source, topic: str, entity: str | None
    ) -> Precondition | None:
        """The unmet precondition of a new event, or None when it may go ahead."""
        pre = precondition_for(source, topic)
        if pre is None or entity is None:
            return None
        return None if await self.satisfied(session, pre, entity) else pre

    async def release_ready(self, session: TenantSession, entity: str | None) -> int:
        """Release, in order, the held events of ``entity`` whose precondition now holds."""
        if entity is None:
            return 0
        held = await session.fetch_all(
            "SELECT event_id, source, topic FROM event_store"
            " WHERE entity_key = %s AND status = 'held' ORDER BY event_id FOR UPDATE",
            (entity,),
        )
        released = 0
        for row in held:
            pre = precondition_for(row["source"], row["topic"])
            if pre is None or await self.satisfied(session, pre, entity):
                released += await self._release(session, row, timed_out=False, reason="")
        return released

    async def release_due(self, session: TenantSession) -> int:
        """The sweep: release what became ready, and what waited past the timeout."""
        now = self.clock()
        held = await session.fetch_all(
            "SELECT event_id, source, topic, entity_key, received_at, payload FROM event_store"
            " WHERE status = 'held' ORDER BY event_id FOR UPDATE SKIP LOCKED"
        )
        released = 0
        for row in held:
            pre = precondition_for(row["source"], row["topic"])
            entity = row["entity_key"]
            if pre is None or entity is None or await self.satisfied(session, pre, entity):
                released += await self._release(session, row, timed_out=False, reason="")
            elif row["received_at"] + self.timeout <= now:
                verdict = await self._probe(row)
                released += await self._release(session, row, timed_out=True, reason=verdict)
        return released

    async def _probe(self, row: dict[str, Any]) -> str:
        if self.probe is None:
            return "not re-checked (no provider probe)"
        try:
            holds = await self.probe.holds(row)
        except Exception as exc:  # the provider may be down: release anyway, say so
            return f"provider re-check failed: {type(exc).__name__}"
        return {True: "provider confirms", False: "provider denies", None: "provider unsure"}[holds]

    async def _release(
        self, session: TenantSession, row: dict[str, Any], *, timed_out: bool, reason: str
    ) -> int:
        note = (
            f"released after hold timeout; precondition {reason}"
            if timed_out
            else ("released: precondition met")
        )
        count = await session.execute(
            "UPDATE event_store SET status = 'pending', timeout_released = %s,"
            " released_at = %s, status_reason = %s"
            " WHERE event_id = %s AND status = 'held'",
            (timed_out, self.clock(), note, row["event_id"]),
        )
        if count:
            self.metrics.released.labels(
                source=row["source"], reason="timeout" if timed_out else "precondition"
            ).inc()
        return count
