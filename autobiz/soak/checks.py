"""After the soak: what the providers and the ledger say, not what the soak did.

* **lost**: a case whose flow never reached an end; a webhook the sandbox gave up
  delivering; an event the ingress stored but never handed to its workflow (still
  pending or held, or dead-lettered by the relay).
* **duplicated**, against the sandbox's provider state and the ledger's receipts: more
  than one captured PaymentIntent per order (or capture receipts), more than one Printful
  order per order (``external_id``), more than one Stripe refund per PaymentIntent (each
  one gets at most one refund request in a round) or refund receipts per refund flow,
  more than one email per notice (SendGrid's outbox, by our reference).
* **invariant violations**: refunded above captured (Stripe), money moved at Stripe with
  no FINANCIAL receipt, a refund receipt naming no Stripe refund, an email of ours in
  SendGrid's outbox with no receipt.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from autobiz.db.database import Database
from autobiz.demo.business_day import Case
from autobiz.providers.tenant_clients import TenantClients

if TYPE_CHECKING:
    from sandbox.control_client import SandboxControl

ORDER_KEY = "order_key"  # the PaymentIntent metadata naming its order


@dataclass
class Findings:
    lost: list[dict[str, Any]] = field(default_factory=list)
    duplicated: list[dict[str, Any]] = field(default_factory=list)
    invariant_violations: list[dict[str, Any]] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)


async def check(
    cases: list[Case],
    *,
    control: SandboxControl,
    clients: TenantClients,
    db: Database,
    tenants: list[str],
    since: datetime,
    webhook_attempts: int,
) -> Findings:
    """Judge ``cases`` (and everything the sandbox holds) once the stack has settled;
    ``webhook_attempts`` is how often the sandbox tries a webhook before it gives up."""
    found = Findings()
    _lost_cases(cases, found)
    await _lost_webhooks(control, webhook_attempts, found)
    await _stuck_events(db, tenants, since, found)
    await _captures(cases, control, db, found)
    await _printful(control, found)
    await _refunds(cases, clients, db, found)
    await _emails(control, db, tenants, found)
    return found


def _lost_cases(cases: list[Case], found: Findings) -> None:
    found.checked["cases"] = len(cases)
    for case in cases:
        if case.actual is None:
            found.lost.append(
                {
                    "kind": "flow",
                    "case": case.name,
                    "workflow_id": case.workflow_id,
                    "problems": case.problems,
                }
            )


async def settle(
    control: SandboxControl,
    db: Database,
    tenants: list[str],
    since: datetime,
    *,
    webhook_attempts: int,
    within: float = 120.0,
) -> bool:
    """Wait (up to ``within`` seconds) until no webhook is still being retried and the
    ingress has handed every stored event over; whether it settled."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            retrying = _undelivered(await control.deliveries(), webhook_attempts)[1]
            if not retrying and not await _open_events(db, tenants, since):
                return True
        except Exception:  # noqa: S110  a part that is coming back (chaos): look again
            pass
        await asyncio.sleep(1.0)
    return False


async def _open_events(db: Database, tenants: list[str], since: datetime) -> int:
    n = 0
    for tenant in tenants:
        async with db.tenant(tenant) as session:
            n += int(
                await session.fetch_val(
                    "SELECT count(*) FROM event_store WHERE tenant_id = %s AND "
                    "received_at >= %s AND status IN ('pending', 'held')",
                    (tenant, since),
                )
            )
    return n


Attempts = dict[tuple[str, str], list[dict[str, Any]]]


def _undelivered(
    records: list[dict[str, Any]], max_attempts: int
) -> tuple[Attempts, list[tuple[str, str]]]:
    """The attempts per (provider, event id), and the events not delivered yet that the
    sandbox still has attempts left for."""
    attempts: Attempts = defaultdict(list)
    for record in records:
        attempts[(record["provider"], record["event_id"])].append(record)
    retrying = [
        key
        for key, tries in attempts.items()
        if not any(t["delivered"] for t in tries) and len(tries) < max_attempts
    ]
    return attempts, retrying


async def _lost_webhooks(control: SandboxControl, max_attempts: int, found: Findings) -> None:
    """Every event the sandbox sent was delivered (2xx) at some attempt; one not
    delivered yet (given up on, or still being retried after the stack settled) is lost."""
    attempts, _ = _undelivered(await control.deliveries(), max_attempts)
    found.checked["webhooks"] = len(attempts)
    found.checked["webhook_attempts"] = sum(len(v) for v in attempts.values())
    for (provider, event_id), tries in attempts.items():
        if not any(t["delivered"] for t in tries):
            found.lost.append(
                {
                    "kind": "webhook",
                    "provider": provider,
                    "event_id": event_id,
                    "topic": tries[0]["topic"],
                    "attempts": len(tries),
                    "last": tries[-1].get("status") or tries[-1].get("error"),
                }
            )


async def _stuck_events(db: Database, tenants: list[str], since: datetime, found: Findings) -> None:
    """Stored events still waiting for their workflow once everything has settled, or
    given up on by the relay (a dead letter of a hand-off, not of a malformed event)."""
    total = 0
    for tenant in tenants:
        async with db.tenant(tenant) as session:
            total += int(
                await session.fetch_val(
                    "SELECT count(*) FROM event_store WHERE tenant_id = %s AND received_at >= %s",
                    (tenant, since),
                )
            )
            rows = await session.fetch_all(
                "SELECT source, provider_event_id, topic, status, status_reason FROM event_store "
                "WHERE tenant_id = %s AND received_at >= %s AND (status IN ('pending', 'held') "
                "OR (status = 'dead_letter' AND status_reason LIKE 'hand-off%%'))",
                (tenant, since),
            )
        for row in rows:
            found.lost.append({"kind": "event", "tenant": tenant, **dict(row)})
    found.checked["stored_events"] = total


async def _receipts(db: Database, tenant: str, tool: str) -> list[dict[str, Any]]:
    async with db.tenant(tenant) as session:
        rows = await session.fetch_all(
            "SELECT workflow_id, provider_object_id, status, amount_minor FROM receipts "
            "WHERE tenant_id = %s AND tool = %s",
            (tenant, tool),
        )
    return [dict(r) for r in rows]


async def _captures(
    cases: list[Case], control: SandboxControl, db: Database, found: Findings
) -> None:
    """One captured PaymentIntent per order at Stripe, one capture receipt per order flow;
    every captured PaymentIntent of the soak has its receipt."""
    intents = await control.stripe_payment_intents()
    captured: dict[str, list[str]] = defaultdict(list)
    for pi in intents:
        order_key = (pi.get("metadata") or {}).get(ORDER_KEY)
        if order_key and int(pi.get("amount_received") or 0) > 0:
            captured[str(order_key)].append(pi["id"])
    found.checked["captured_payment_intents"] = sum(len(v) for v in captured.values())
    for order_key, ids in captured.items():
        if len(ids) > 1:
            found.duplicated.append({"kind": "capture", "order_key": order_key, "stripe": ids})
    # The soak's orders, by the order key their PaymentIntents carry.
    ours = {f"{c.tenant}:{c.facts['order_id']}": c for c in cases if c.facts.get("order_id")}
    for tenant in sorted({c.tenant for c in cases}):
        receipts = await _receipts(db, tenant, "stripe.capture_payment")
        per_flow = Counter(r["workflow_id"] for r in receipts)
        for workflow_id, n in per_flow.items():
            if n > 1:
                found.duplicated.append(
                    {"kind": "capture_receipt", "workflow_id": workflow_id, "receipts": n}
                )
        with_receipt = {r["provider_object_id"] for r in receipts}
        for order_key, ids in captured.items():
            case = ours.get(order_key)
            if case is None or case.tenant != tenant:
                continue
            for pi_id in ids:
                if pi_id not in with_receipt:
                    found.invariant_violations.append(
                        {"kind": "money_without_receipt", "stripe": pi_id, "case": case.name}
                    )


async def _printful(control: SandboxControl, found: Findings) -> None:
    orders = await control.printful_orders()
    found.checked["printful_orders"] = len(orders)
    per_order = Counter(str(o.get("external_id")) for o in orders if o.get("external_id"))
    for external_id, n in per_order.items():
        if n > 1:
            found.duplicated.append(
                {"kind": "printful_order", "external_id": external_id, "orders": n}
            )


async def _refunds(
    cases: list[Case], clients: TenantClients, db: Database, found: Findings
) -> None:
    """At most one Stripe refund per PaymentIntent (one request each), never above the
    captured amount; one refund receipt per refund flow; every refund has its receipt and
    every refund receipt its Stripe refund."""
    pis: dict[str, set[str]] = defaultdict(set)
    for case in cases:
        if pi := case.facts.get("payment_intent"):
            pis[case.tenant].add(str(pi))
    seen = 0
    for tenant, ids in sorted(pis.items()):
        stripe = (await clients.for_tenant(tenant)).stripe
        receipts = await _receipts(db, tenant, "stripe.create_refund")
        receipt_objects = {r["provider_object_id"] for r in receipts}
        per_flow = Counter(r["workflow_id"] for r in receipts)
        for workflow_id, n in per_flow.items():
            if n > 1:
                found.duplicated.append(
                    {"kind": "refund_receipt", "workflow_id": workflow_id, "receipts": n}
                )
        refund_ids: set[str] = set()
        for pi_id in sorted(ids):
            refunds = [
                r
                for r in (await stripe.list_refunds(payment_intent_id=pi_id)).refunds
                if r.status in ("succeeded", "pending")
            ]
            seen += len(refunds)
            refund_ids.update(r.id for r in refunds)
            if len(refunds) > 1:
                found.duplicated.append(
                    {"kind": "refund", "stripe": pi_id, "refunds": [r.id for r in refunds]}
                )
            info = await stripe.retrieve_payment_intent(pi_id)
            refunded = sum(r.amount for r in refunds)
            if refunded > info.amount_received:
                found.invariant_violations.append(
                    {
                        "kind": "refunded_above_captured",
                        "stripe": pi_id,
                        "refunded": refunded,
                        "captured": info.amount_received,
                    }
                )
            for r in refunds:
                if r.id not in receipt_objects:
                    found.invariant_violations.append(
                        {"kind": "money_without_receipt", "stripe": r.id, "payment_intent": pi_id}
                    )
        for receipt in receipts:
            if receipt["provider_object_id"] not in refund_ids:
                # A refund of a PaymentIntent outside the soak is not ours to judge.
                if any(c.workflow_id == receipt["workflow_id"] for c in cases):
                    found.invariant_violations.append(
                        {
                            "kind": "receipt_without_money",
                            "receipt_of": receipt["provider_object_id"],
                            "workflow_id": receipt["workflow_id"],
                        }
                    )
    found.checked["stripe_refunds"] = seen


async def _emails(
    control: SandboxControl, db: Database, tenants: list[str], found: Findings
) -> None:
    """One email per notice: SendGrid's outbox by our reference (the call's external
    idempotency key); each email of the soak's tenants has its receipt."""
    outbox = await control.outbox()
    found.checked["emails"] = len(outbox)
    refs: Counter[tuple[str, str]] = Counter(
        (str(m.get("account")), str(ref))
        for m in outbox
        if (ref := ((m.get("request") or {}).get("custom_args") or {}).get("autobiz_ref"))
    )
    for (_, ref), n in refs.items():
        if n > 1:
            found.duplicated.append({"kind": "email", "reference": ref, "sent": n})
    for tenant in tenants:
        async with db.tenant(tenant) as session:
            rows = await session.fetch_all(
                "SELECT external_key FROM receipts WHERE tenant_id = %s AND tool = %s",
                (tenant, "sendgrid.send_email"),
            )
        receipted = {r["external_key"] for r in rows}
        for account, ref in refs:
            if account == tenant and ref not in receipted:
                found.invariant_violations.append(
                    {"kind": "email_without_receipt", "reference": ref, "tenant": tenant}
                )
