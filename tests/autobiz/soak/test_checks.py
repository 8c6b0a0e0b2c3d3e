"""The soak's judge (``autobiz.soak.checks``) on real provider state and a real ledger:
clean state yields nothing; each kind of loss, duplicate and broken invariant, planted
the way it would happen (a second capture, a refund sent twice with different keys, an
email sent twice, a webhook the provider gave up on, an event never handed over, a refund
receipt with no refund at Stripe), is found and named."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autobiz.db.database import Database
from autobiz.demo.business_day import Case
from autobiz.ledger.receipts import ReceiptDraft, ReceiptStore
from autobiz.providers.sendgrid_client import Email
from autobiz.providers.tenant_clients import ProviderClients, TenantClients
from autobiz.soak.checks import Findings, check
from kernel.contracts import SideEffect
from tests.support.orders import authorize, card_payment, seed_order
from tests.support.sandbox import Sandbox, sandbox, sandbox_server  # noqa: F401
from tests.support.stack import free_port

pytestmark = pytest.mark.integration


async def _receipt(db: Database, tenant: str, workflow_id: str, tool: str, obj: str) -> None:
    key = uuid.uuid4().hex
    await ReceiptStore(db).record(
        ReceiptDraft(
            tenant_id=tenant,
            workflow_id=workflow_id,
            run_id="run",
            activity_id="1",
            tool=tool,
            tool_version="1",
            side_effect=SideEffect.FINANCIAL,
            internal_key=key,
            external_key=f"autobiz:{key[:32]}",
            request_hash=key,
            provider="stripe",
            provider_object_id=obj,
            status="succeeded",
            amount_minor=2500,
            currency="USD",
        )
    )


async def _captured_order(
    sandbox: Sandbox,  # noqa: F811
    own: ProviderClients,
    db: Database,
    tenant: str,
) -> Case:
    """An order paid and captured, with its capture receipt: the way a flow leaves it."""
    order_id = await seed_order(sandbox.control, own.shop_domain)
    pi = await authorize(own.stripe, tenant, 2500, order_id, capture=True)
    workflow_id = f"order:{tenant}:{order_id}"
    await _receipt(db, tenant, workflow_id, "stripe.capture_payment", pi)
    return Case(
        "an order",
        "OrderFulfill",
        "completed",
        workflow_id=workflow_id,
        tenant=tenant,
        actual="completed",
        facts={"order_id": order_id, "payment_intent": pi},
    )


async def _judge(
    sandbox: Sandbox,  # noqa: F811
    clients: TenantClients,
    db: Database,
    tenant: str,
    cases: list[Case],
    since: datetime,
) -> Findings:
    return await check(
        cases,
        control=sandbox.control,
        clients=clients,
        db=db,
        tenants=[tenant],
        since=since,
        webhook_attempts=1,  # as the planted lost webhook's sandbox is told
    )


async def test_a_clean_run_has_no_findings(
    sandbox: Sandbox,  # noqa: F811
    database: Database,
    tenant: str,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    clients = await sandbox.tenant_clients(tenant)
    own = await clients.for_tenant(tenant)
    try:
        case = await _captured_order(sandbox, own, database, tenant)
        found = await _judge(sandbox, clients, database, tenant, [case], since)
    finally:
        await clients.aclose()
    assert (found.lost, found.duplicated, found.invariant_violations) == ([], [], [])
    assert found.checked["cases"] == 1 and found.checked["captured_payment_intents"] == 1


async def test_every_planted_loss_and_duplicate_is_found(
    sandbox: Sandbox,  # noqa: F811
    database: Database,
    tenant: str,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    clients = await sandbox.tenant_clients(tenant)
    own = await clients.for_tenant(tenant)
    try:
        case = await _captured_order(sandbox, own, database, tenant)
        pi = str(case.facts["payment_intent"])
        order_key = f"{tenant}:{case.facts['order_id']}"
        # A second PaymentIntent captured for the same order: money taken twice.
        second = await card_payment(own.stripe, 2500, order_key, capture=True)
        # The refund sent twice with two keys (what a lost idempotency key does); only
        # the first has its receipt.
        refunds = [
            await own.stripe.create_refund(
                payment_intent_id=pi, idempotency_key=f"k-{uuid.uuid4()}", amount=500
            )
            for _ in range(2)
        ]
        refund_flow = f"refund:{tenant}:r1"
        await _receipt(database, tenant, refund_flow, "stripe.create_refund", refunds[0].id)
        # A refund receipt naming a refund Stripe never made.
        await _receipt(database, tenant, refund_flow, "stripe.create_refund", "re_never_made")
        # One notice emailed twice.
        email = Email(kind="refund_issued", to=["customer@example.com"], reference="notice-1")
        for _ in range(2):
            await own.mailer.send(email)
        # A webhook the provider gave up on: the ingress it goes to is not there.
        await sandbox.control.webhooks(
            target_url=f"http://127.0.0.1:{free_port()}/webhooks", max_attempts=1
        )
        answer = await sandbox.control.trigger("orders/paid", tenant=tenant)
        assert answer.status_code == 200, answer.text
        deliveries = await _eventually_failed(sandbox)
        # An event the ingress stored and never handed over.
        async with database.tenant(tenant) as session:
            await session.execute(
                "INSERT INTO event_store (tenant_id, source, provider_event_id, topic, "
                "payload_sha256, signature_valid, status) "
                "VALUES (%s, 'shopify', %s, 'orders/paid', 'x', true, 'pending')",
                (tenant, f"evt-{uuid.uuid4()}"),
            )
        refund_case = Case(
            "a refund", "Refund", "refunded", workflow_id=refund_flow, tenant=tenant
        )  # never finished: actual is None
        found = await _judge(sandbox, clients, database, tenant, [case, refund_case], since)
    finally:
        await clients.aclose()

    kinds = sorted(d["kind"] for d in found.duplicated)
    assert kinds == ["capture", "email", "refund", "refund_receipt"], found.duplicated
    [capture] = [d for d in found.duplicated if d["kind"] == "capture"]
    assert sorted(capture["stripe"]) == sorted([pi, second])
    # Every webhook the sandbox had for the dead ingress is lost, the trigger's among them.
    assert {d["kind"] for d in found.lost} == {"event", "flow", "webhook"}, found.lost
    assert sum(1 for d in found.lost if d["kind"] != "webhook") == 2
    lost_webhooks = {d["event_id"] for d in found.lost if d["kind"] == "webhook"}
    assert {d["event_id"] for d in deliveries} <= lost_webhooks
    violations = sorted(
        (v["kind"], v.get("stripe") or v.get("receipt_of") or v.get("reference"))
        for v in found.invariant_violations
    )
    assert violations == sorted(
        [
            ("money_without_receipt", refunds[1].id),
            ("money_without_receipt", second),
            ("receipt_without_money", "re_never_made"),
            ("email_without_receipt", "notice-1"),  # sent from outside the kernel
        ]
    ), found.invariant_violations


async def _eventually_failed(sandbox: Sandbox) -> list[dict[str, Any]]:  # noqa: F811
    for _ in range(100):
        failed = [d for d in await sandbox.control.deliveries() if not d["delivered"]]
        if failed:
            return failed
        await asyncio.sleep(0.1)
    raise AssertionError("the webhook was never attempted")
