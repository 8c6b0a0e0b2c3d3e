"""Both Prometheus endpoints, scraped over HTTP after a business flow, as Prometheus would.

A real ``autobiz worker`` process (its endpoint on ``AUTOBIZ_WORKER__METRICS_BIND``) and a
real ingress, whose relay hands the sandbox's signed webhooks to Temporal. The flow: an
order enters by webhook and ships; a 600.00 order waits for its capture approval (the
backlog gauge shows it), is escalated, gets a forged decision signal (dropped) and a
signed approval; a forged Stripe webhook is refused; a refund made outside AutoBiz is
found by a reconciliation run and repaired once finance approves; a stuck order is found
by the InvariantMonitor; a PaymentIntent naming another order is refused at capture; a
closeout hits its bound.

Then each scrape must pass ``promtool check metrics``, and every metric of
``docs/metrics.md`` must be on its endpoint with the documented type and labels, with
values this flow explains. A few are not produced by this flow; they are listed in
``NOT_DRIVEN`` with the test that produces them, and must still be documented right
if they appear. Every ``autobiz_*`` series on either endpoint must be documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from autobiz import __version__
from autobiz.business_config import load_configs
from autobiz.db.database import Database
from ingress.app import IngressDeps, create_app
from ingress.handoff import TemporalHandoff
from starters.closeout import start_closeout
from starters.flows import decide
from starters.monitor import start_monitor
from starters.reconciliation import start_reconciliation
from tests.ingress.conftest import serve_http
from tests.ingress.support import charge, dumps, stripe_event, stripe_header
from tests.support.approver_keys import Approvers, approvers  # noqa: F401
from tests.support.metrics_doc import DocMetric, documented
from tests.support.promtool import check_metrics, promtool
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.support.stack import free_port
from tests.workers.test_worker_kill import Rig, rig  # noqa: F401
from tests.workers.test_worker_metrics import Sample, parse_exposition, total
from tests.workflows.monitor import broken_data as broken
from tests.workflows.support import eventually
from workflows.common.models import Decision
from workflows.ids import order_workflow_id
from workflows.orders.models import OrderFulfillResult

pytestmark = pytest.mark.integration

# Labels the SDK puts on worker series, next to the documented ones.
SDK_LABELS = {"service_name", "namespace", "task_queue", "workflow_type", "activity_type"}
# Documented metrics this flow does not produce, and the tests that do.
NOT_DRIVEN = {
    "autobiz_breaker_transitions_total": "the breaker tests (tests/autobiz/breakers)",
    "autobiz_breaker_rejections_total": "the breaker tests (tests/autobiz/breakers)",
    "autobiz_ingress_security_incidents_total": "tests/ingress/test_cross_tenant.py",
    "autobiz_ingress_held_total": "tests/ingress/test_ordering.py",
    "autobiz_ingress_released_total": "tests/ingress/test_ordering.py",
    "autobiz_rate_limited_total": "refusals: tests/autobiz/ratelimits (a day stays in budget)",
}
ORDER_TOOLS = (
    "shopify.get_order@1",
    "risk.assess@1",
    "stripe.capture_payment@1",
    "printful.create_order@1",
    "printful.confirm_order@1",
    "shopify.create_fulfillment@1",
    "sendgrid.send_email@1",
)


@dataclass
class Scrape:
    text: str
    samples: list[Sample]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        return total(self.samples, name, **labels)

    def of(self, name: str) -> list[Sample]:
        """The samples of family ``name`` (a histogram's ``_bucket``/``_sum``/``_count``)."""
        parts = {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        return [s for s in self.samples if s[0] in parts]


async def scrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        resp = await http.get(url)
    assert resp.status_code == 200, resp.text
    text = resp.text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    return Scrape(text, parse_exposition(text), types)


@dataclass
class Live:
    rig: Rig
    worker_url: str
    ingress_url: str

    async def worker(self) -> Scrape:
        return await scrape(self.worker_url)

    async def ingress(self) -> Scrape:
        return await scrape(f"{self.ingress_url}/metrics")

    async def worker_when(self, name: str, expected: float, **labels: str) -> Scrape:
        """Scrape until ``name{labels}`` is ``expected`` (the SDK exports on its own
        schedule and the gauges refresh every interval), then return that scrape."""
        return await self._until(name, labels, lambda got: got == expected, f"== {expected}")

    async def worker_at_least(self, name: str, minimum: float, **labels: str) -> Scrape:
        return await self._until(name, labels, lambda got: got >= minimum, f">= {minimum}")

    async def _until(
        self, name: str, labels: dict[str, str], ok: Callable[[float], bool], what: str
    ) -> Scrape:
        last: Scrape | None = None

        async def probe() -> Scrape | None:
            nonlocal last
            last = await self.worker()
            return last if ok(last.value(name, **labels)) else None

        try:
            return await eventually(probe, within=30, what=f"{name}{labels} {what}")
        except AssertionError:
            got = last.value(name, **labels) if last else None
            raise AssertionError(f"{name}{labels} = {got}, expected {what}") from None


@contextlib.asynccontextmanager
async def live_ingress(r: Rig, database: Database) -> AsyncIterator[str]:
    """The ingress for the rig's tenant on loopback, its relay handing events to the
    task queue the worker process polls; the sandbox delivers its webhooks to it."""
    app = create_app(
        IngressDeps(
            db=database,
            secrets=r.sandbox.webhook_secrets(r.tenant),
            handoff=TemporalHandoff(r.client, r.task_queue),
        )
    )
    relay = app.state.ingress.relay
    assert relay is not None

    async def pump() -> None:
        while True:
            await relay.run_once()
            await asyncio.sleep(0.2)

    async with serve_http(app) as url:
        task = asyncio.create_task(pump())
        await r.sandbox.control.webhooks(target_url=f"{url}/webhooks")
        try:
            yield url
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# The worker's config, changed so this flow produces what a day rarely does in seconds:
# approvals escalate after 2 s, and a closeout may make one tool call only.
CONFIG_EDITS = {
    "escalate_after: 4h ": "escalate_after: 2s ",
    "max_tool_calls: 20        # four reads": "max_tool_calls: 1         # four reads",
}


@pytest.fixture
async def live(rig: Rig, database: Database) -> AsyncIterator[Live]:  # noqa: F811
    path = rig.workdir / "config" / f"{rig.tenant}.yaml"
    text = path.read_text()
    for old, new in CONFIG_EDITS.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    bind = f"127.0.0.1:{free_port()}"
    rig.env["AUTOBIZ_WORKER__METRICS_BIND"] = bind
    rig.env["AUTOBIZ_WORKER__METRICS_REFRESH_SECONDS"] = "0.5"
    await rig.spawn()
    async with live_ingress(rig, database) as url:
        yield Live(rig, f"http://{bind}/metrics", url)


async def order_by_webhook(
    r: Rig, price_minor: int, *, order_key: str | None = None
) -> tuple[str, str]:
    """A checkout: the PaymentIntent authorised, the Shopify order created (its webhook
    starts OrderFulfill through the ingress), the intent tagged with the order (or with
    ``order_key``); (workflow id, PaymentIntent id)."""
    pi = await r.clients.stripe.create_payment_intent(
        amount=price_minor,
        currency="usd",
        order_key="checkout",
        idempotency_key=f"test-{uuid.uuid4()}",
        payment_method="pm_card_visa",
        confirm=True,
        capture_method="manual",
    )
    price = f"{price_minor / 100:.2f}"
    seeded = await r.sandbox.control.seed_shopify_order(
        shop=r.clients.shop_domain,
        financial_status="authorized",
        payment_intent=pi.id,
        line_items=[{"title": "Tee", "quantity": 1, "price": price, "sku": "PF-4012"}],
    )
    order_id = str(seeded["legacy_id"])
    await r.clients.stripe.set_order_key(
        pi.id, order_key or f"{r.tenant}:{order_id}", idempotency_key=f"bind-{order_id}"
    )
    return order_workflow_id(r.tenant, order_id), pi.id


async def ship_and_finish(r: Rig, workflow_id: str) -> OrderFulfillResult:
    """Printful ships once the flow is in production (its webhook reaches the flow)."""
    from starters.flows import flow_status

    async def printful_id() -> int | None:
        try:
            status = await flow_status(r.client, workflow_id)
        except Exception:  # not started yet
            return None
        if status.state != "in_production":
            return None
        return int(status.detail["printful_order_id"])

    pf_id = await eventually(printful_id, within=90, what=f"{workflow_id} in production")
    await r.sandbox.control.advance_printful(pf_id, "ship", carrier="UPS")
    handle = r.client.get_workflow_handle(workflow_id, result_type=OrderFulfillResult)
    return await asyncio.wait_for(handle.result(), timeout=90)


async def pending_approval(r: Rig, workflow_id: str) -> str:
    from starters.flows import flow_status

    async def probe() -> str | None:
        try:
            status = await flow_status(r.client, workflow_id)
        except Exception:
            return None
        a = status.approval
        return a.request_id if a is not None and a.status == "pending" else None

    return await eventually(probe, within=90, what=f"a pending approval on {workflow_id}")


def check_documented(doc: DocMetric, s: Scrape, endpoint_labels: set[str]) -> list[Sample]:
    """The family exists with the documented type; every sample carries exactly the
    documented labels (plus the endpoint's own, and ``le`` on buckets)."""
    assert s.types.get(doc.name) == doc.kind, f"{doc.name}: type {s.types.get(doc.name)}"
    samples = s.of(doc.name)
    for name, labels, _ in samples:
        have = set(labels) - {"le"} - endpoint_labels
        assert have == set(doc.labels), f"{name}: labels {sorted(labels)}, documented {doc.labels}"
    return samples


async def test_both_endpoints_after_a_business_day(
    live: Live,
    approvers: Approvers,  # noqa: F811
    database: Database,
) -> None:
    r, tenant = live.rig, live.rig.tenant
    config = load_configs(r.workdir / "config")[tenant]  # the worker's, as edited
    me = {"tenant": tenant}

    # 1. An order by webhook, through to shipped.
    first_id, first_pi = await order_by_webhook(r, 4200)
    assert (await ship_and_finish(r, first_id)).state == "completed"

    # 2. A forged Stripe webhook: refused, counted once.
    body = dumps(stripe_event("charge.refunded", charge("pi_forged")))
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            f"{live.ingress_url}/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": stripe_header(body, "whsec_forged", t=int(time.time())),
                "Content-Type": "application/json",
            },
        )
    assert forged.status_code == 401, forged.text

    # 3. An order that needs its capture approved: the backlog shows it while it waits.
    big_id, _ = await order_by_webhook(r, 60000)
    await pending_approval(r, big_id)
    waiting = {"tenant": tenant, "action": "capture_payment"}
    w = await live.worker_when("autobiz_approval_backlog", 1, **waiting)
    assert w.value("autobiz_approval_backlog_oldest_age_seconds", **waiting) > 0
    handle = r.client.get_workflow_handle(big_id)
    await handle.signal(
        "decide_signal", Decision(tenant_id=tenant, approver="mallory", approve=True)
    )
    await live.worker_when("autobiz_approval_signals_dropped_total", 1, **me)
    await live.worker_at_least("autobiz_approval_notices_total", 1, kind="escalation", **waiting)
    decided = await decide(
        r.client, big_id, await approvers.decision(r.client, big_id, "omar", True)
    )
    assert decided.status == "approved"
    assert (await ship_and_finish(r, big_id)).state == "completed"
    await live.worker_when("autobiz_approval_backlog", 0, **waiting)

    # 4. A refund made outside AutoBiz, found by reconciliation (webhooks off: no
    #    charge.refunded reaches a flow first), open until finance approves its repair.
    await r.sandbox.control.webhooks(target_url=None)
    await r.clients.stripe.create_refund(
        payment_intent_id=first_pi, idempotency_key=f"outside-{uuid.uuid4()}", amount=1000
    )
    run = await start_reconciliation(
        r.client, config, task_queue=r.task_queue, key=uuid.uuid4().hex
    )
    drift = {"tenant": tenant, "kind": "refund_outside"}
    result = await asyncio.wait_for(run.result(), timeout=90)
    (found,) = [d for d in result.drifts if d.kind == "refund_outside"]
    await live.worker_when("autobiz_reconciliation_drift_detected_total", 1, **drift)
    await live.worker_when(
        "autobiz_reconciliation_drift_open", 1, status="pending_approval", **drift
    )
    repair_id = result.repairs[str(found.drift_id)]
    approved = await decide(
        r.client, repair_id, await approvers.decision(r.client, repair_id, "ana", True)
    )
    assert approved.status == "approved"
    await live.worker_when(
        "autobiz_reconciliation_drift_resolved_total", 1, status="repaired", **drift
    )
    await live.worker_when("autobiz_reconciliation_drift_open", 0, **drift)

    # 5. A stuck order, found by the InvariantMonitor: an incident, counted and open.
    await broken.order(database, tenant, "stuck-1", "paid")
    monitor = await start_monitor(r.client, config, task_queue=r.task_queue, key="metrics")
    await monitor.result()
    inv = {"tenant": tenant, "kind": "INV-03"}
    await live.worker_when("autobiz_invariant_violations_open", 1, status="open", **inv)

    w = await live.worker_when("autobiz_invariant_violations_total", 1, **inv)
    i = await live.ingress()

    # Values this flow explains. Two orders, every tool once each (and emails to the
    # approvers the approval was escalated to), nothing refused.
    wf = {**me, "workflow_type": "OrderFulfill", "task_queue": r.task_queue}
    capture = {**me, "action": "capture_payment"}
    assert w.value("autobiz_approval_notices_total", kind="escalation", **capture) >= 1
    emails = w.value("autobiz_tool_calls_total", tool="sendgrid.send_email@1", **wf)
    assert emails > 2  # the two shipping confirmations and the escalation's
    calls = {tool: 2.0 for tool in ORDER_TOOLS} | {"sendgrid.send_email@1": emails}
    for tool, n in calls.items():
        assert w.value("autobiz_tool_calls_total", tool=tool, outcome="succeeded", **wf) == n
        assert w.value("autobiz_tool_call_duration_seconds_count", tool=tool, **wf) == n
    assert w.value("autobiz_tool_calls_total", outcome="failed", **wf) == 0
    assert w.value("autobiz_gate_decisions_total", outcome="allowed", **wf) == sum(calls.values())
    assert (
        w.value("autobiz_gate_decisions_total", tool="stripe.capture_payment@1", **wf)
        == 3  # the first order's allowed, the big one's needs_approval then allowed
    )
    assert w.value("autobiz_gate_decisions_total", outcome="needs_approval", **wf) == 1
    assert not [s for s in w.of("autobiz_gate_decisions_total") if "denied" in s[1]["outcome"]]
    # The demo prices each provider's calls: two Shopify calls cost the same.
    cost = {t: w.value("autobiz_cost_microdollars_total", tool=t, **wf) for t in ORDER_TOOLS}
    assert cost["shopify.get_order@1"] == cost["shopify.create_fulfillment@1"] > 0
    assert w.value("autobiz_receipts_total", outcome="written", side_effect="FINANCIAL", **wf) == 2
    assert (
        w.value("autobiz_idempotency_outcomes_total", outcome="executed", **wf)
        == 2 * 4 + emails  # capture, Printful create and confirm, fulfilment; the emails
    )
    assert w.value("autobiz_idempotency_outcomes_total", outcome="replayed", **me) == 0
    assert w.value("autobiz_approval_requests_total", **capture) == 1
    assert w.value("autobiz_approval_outcomes_total", outcome="approved", **capture) == 1
    assert w.value("autobiz_approval_wait_seconds_count", outcome="approved", **capture) == 1
    assert w.value("autobiz_approval_wait_seconds_sum", outcome="approved", **capture) > 0
    assert w.value("autobiz_approval_backlog", **capture) == 0
    assert w.value("autobiz_approval_backlog_oldest_age_seconds", **capture) == 0
    assert (
        w.value("autobiz_reconciliation_drift_resolved_total", status="pending_approval", **drift)
        == 1
    )
    assert w.value("autobiz_invariant_violations_open", **inv) == 1
    assert w.value("autobiz_metrics_refresh_timestamp_seconds") > time.time() - 60
    assert w.value("autobiz_build_info", version=__version__) == 1
    # The SDK's series follow the same conventions.
    assert w.value("temporal_workflow_completed_total", workflow_type="OrderFulfill") >= 2
    assert w.types.get("temporal_activity_execution_latency_seconds") == "histogram"

    # The ingress: the orders' webhooks stored for the relay and handed over (their
    # orders/create and shipment_sent), the forgery refused once.
    assert i.value("autobiz_ingress_events_total", source="shopify", outcome="pending") >= 2
    assert i.value("autobiz_ingress_events_total", source="printful", outcome="pending") >= 2
    assert i.value("autobiz_ingress_handoffs_total", outcome="handed_over") >= 4
    assert i.value("autobiz_ingress_signature_failures_total") == 1
    assert i.value("autobiz_ingress_signature_failures_total", source="stripe") == 1
    assert i.value("autobiz_ingress_signature_checks_total", source="stripe") >= 1
    assert i.value("autobiz_ingress_ack_duration_seconds_count", source="shopify") >= 2
    assert i.value("autobiz_ingress_relay_backlog", tenant=tenant) == 0
    assert i.value("autobiz_ingress_relay_backlog_oldest_age_seconds", tenant=tenant) == 0

    # 6. A checkout whose PaymentIntent names another order: the capture is refused as a
    #    security incident (audit_log row and counter), nothing is captured.
    await r.sandbox.control.webhooks(target_url=f"{live.ingress_url}/webhooks")
    _, bad_pi = await order_by_webhook(r, 2500, order_key=f"{tenant}:not-this-order")
    await live.worker_when("autobiz_security_incidents_total", 1, **me)
    intents = {p["id"]: p for p in await r.sandbox.control.stripe_payment_intents()}
    assert intents[bad_pi]["amount_received"] == 0

    # 7. A closeout allowed one tool call: the gate ends the run at its second, by bound.
    closeout = await start_closeout(r.client, config, task_queue=r.task_queue)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closeout.result(), timeout=60)
    w = await live.worker_when(
        "autobiz_run_terminations_total",
        1,
        reason="max_tool_calls",
        workflow_type="DailyCloseout",
        **me,
    )
    i = await live.ingress()

    # Both scrapes are clean by promtool's lint.
    promtool()
    assert check_metrics(w.text) == "", "worker endpoint"
    assert check_metrics(i.text) == "", "ingress endpoint"

    # Every documented metric: on its endpoint, documented type and labels.
    docs = {d.name: d for d in documented()}
    produced: set[str] = set()
    for d in docs.values():
        s, own = (w, SDK_LABELS) if d.endpoint == "worker" else (i, set())
        if d.name in NOT_DRIVEN and d.name not in s.types:
            continue
        if check_documented(d, s, own):
            produced.add(d.name)
    assert sorted(set(docs) - produced - set(NOT_DRIVEN)) == [], "documented, not produced"
    # Every breaker this flow used is closed (0).
    breakers = {
        s[1]["provider"]: s[2] for s in w.of("autobiz_breaker_state") if s[1]["tenant"] == tenant
    }
    assert "stripe" in breakers and set(breakers.values()) == {0.0}, breakers
    # ... and nothing undocumented on either endpoint.
    for s in (w, i):
        ours = {n for n in s.types if n.startswith("autobiz_")}
        assert sorted(ours - set(docs)) == [], "on an endpoint, not in docs/metrics.md"
