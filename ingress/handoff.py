"""Handing a durable event to its workflow.

``Handoff`` is the seam: the relay calls ``deliver(envelope)`` for each pending event and
marks it ``handed_over`` only when that returns. Raising means "not delivered":

* ``HandoffSkipped`` — nothing to deliver to, on purpose (e.g. the business process of
  this key already finished): the event becomes ``ignored`` with the reason;
* ``PermanentHandoffError`` — can never succeed (no route, no business key): dead letter;
* anything else — transient (Temporal unreachable, workflow not started yet): the event
  stays ``pending`` and the relay retries with back-off, up to a bounded number of times.

The relay is at-least-once across a crash between a delivery and its commit; the
envelope's ``dedup_id`` (source + provider event id) lets a workflow drop a repeat
signal, and workflow ids are business keys so a repeated start is never a second run
beside a running or completed one (a failed run is started again:
``autobiz.business_keys``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from autobiz.business_keys import KEY_CONFLICT_POLICY, KEY_REUSE_POLICY
from autobiz.search_attributes import ORDER_ID, TENANT_ID
from ingress.routing import Action, KeyKind, Route, route_for
from ingress.tenants import Source


class EventEnvelope(BaseModel):
    """What a workflow receives (as the signal argument)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    event_id: int
    dedup_id: str
    source: Source
    provider_event_id: str
    topic: str
    entity_key: str | None
    order_id: str | None
    payment_intent: str | None
    payload_sha256: str
    payload: Any
    received_at: datetime
    timeout_released: bool = False


class WorkflowTrigger(BaseModel):
    """The start argument of a workflow started by a webhook."""

    tenant_id: str
    workflow_id: str
    order_id: str | None
    payment_intent: str | None
    source: Source
    topic: str
    event_id: int


class HandoffSkipped(Exception):
    """Deliberately not delivered; the event is stored as ``ignored``."""


class PermanentHandoffError(Exception):
    """Can never be delivered; the event is dead-lettered."""


class Handoff(Protocol):
    async def deliver(self, event: EventEnvelope) -> None:
        """Deliver or raise (see the module docstring for what each error means)."""
        ...


def business_key(route: Route, event: EventEnvelope) -> str:
    if route.key is KeyKind.MESSAGE:
        found = event.payload.get("message_id") if isinstance(event.payload, dict) else None
        key = found if isinstance(found, str) else None
    else:
        key = event.order_id if route.key is KeyKind.ORDER else event.payment_intent
    if not key:
        raise PermanentHandoffError(f"no {route.key.value} id in the event")
    return key


ClientProvider = Callable[[], Awaitable[Client]]


class TemporalHandoff:
    """Signal-with-start / signal by business key, per the routing table."""

    def __init__(self, client: Client | ClientProvider, task_queue: str) -> None:
        self._client = client
        self.task_queue = task_queue

    async def client(self) -> Client:
        if isinstance(self._client, Client):
            return self._client
        # A provider connects lazily: an unreachable frontend is a transient failure.
        self._client = await self._client()
        return self._client

    def plan(self, event: EventEnvelope) -> tuple[Route, str]:
        route = route_for(event.source, event.topic, event.payload)
        if route is None:
            raise PermanentHandoffError(f"no route for {event.source}:{event.topic}")
        return route, route.workflow_id(event.tenant_id, business_key(route, event))

    async def deliver(self, event: EventEnvelope) -> None:
        route, workflow_id = self.plan(event)
        client = await self.client()
        signal_arg = event.model_dump(mode="json")
        if route.action is Action.SIGNAL:
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id)
            try:
                await handle.signal(route.signal, signal_arg)
            except RPCError as exc:
                # The ordering gate let it through, so the run existed: it has closed
                # (a refund after the order completed). Recorded; reconciliation
                # compares it with what the closed run did.
                if exc.status is RPCStatusCode.NOT_FOUND:
                    raise HandoffSkipped(f"workflow {workflow_id} has closed") from exc
                raise
            return
        trigger = WorkflowTrigger(
            tenant_id=event.tenant_id,
            workflow_id=workflow_id,
            order_id=event.order_id,
            payment_intent=event.payment_intent,
            source=event.source,
            topic=event.topic,
            event_id=event.event_id,
        )
        pairs = [SearchAttributePair(TENANT_ID, event.tenant_id)]
        if event.order_id:
            pairs.append(SearchAttributePair(ORDER_ID, event.order_id))
        try:
            await client.start_workflow(
                route.workflow,
                trigger.model_dump(mode="json"),
                id=workflow_id,
                task_queue=self.task_queue,
                # A running run gets the signal; a completed one is never started
                # again; a failed one (a transient answer past its retries) runs again.
                id_conflict_policy=KEY_CONFLICT_POLICY,
                id_reuse_policy=KEY_REUSE_POLICY,
                start_signal=route.signal,
                start_signal_args=[signal_arg],
                search_attributes=TypedSearchAttributes(pairs),
            )
        except WorkflowAlreadyStartedError as exc:
            raise HandoffSkipped(f"workflow {workflow_id} already completed") from exc
