"""A worker with every flow and activity, its clients pointed at the sandbox, one task
queue and one tenant per test; helpers to seed orders and payments."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from autobiz.business_config import load_business_config
from autobiz.db.database import Database
from autobiz.ledger.receipts import Receipt, ReceiptStore
from autobiz.providers.tenant_clients import ProviderClients, TenantClients
from autobiz.settings import Settings
from autobiz.temporal_client import connect
from kernel.config import BusinessConfig
from kernel.policy import RetryTiming
from kernel.tools.printful import PrintfulRecipient
from starters.flows import flow_status
from tests.support.sandbox import Sandbox
from workers.worker import build_worker
from workflows.common.models import ApprovalTiming, FlowStatus

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo-shop.yaml"
SHIP_TO = PrintfulRecipient(
    name="Ada Lovelace",
    address1="1 Analytical Way",
    city="London",
    zip="N1 9GU",
    country_code="GB",
    email="ada@example.com",
)
FAST = ApprovalTiming(
    timeout=timedelta(seconds=60), remind_before=timedelta(0), escalate_after=timedelta(0)
)
T = TypeVar("T")


@dataclass
class Harness:
    client: Client
    task_queue: str
    tenant: str
    config: BusinessConfig
    sandbox: Sandbox
    clients: ProviderClients  # this tenant's, as the worker builds them
    db: Database
    tenant_clients: TenantClients

    async def seed_order(
        self, price: str = "25.00", *, financial_status: str = "authorized", quantity: int = 1
    ) -> str:
        seeded = await self.sandbox.control.seed_shopify_order(
            shop=self.clients.shop_domain,
            email="customer@example.com",
            financial_status=financial_status,
            line_items=[{"title": "Tee", "quantity": quantity, "price": price, "sku": "PF-4012"}],
        )
        return str(seeded["legacy_id"])

    async def authorize(self, amount_minor: int, order_id: str, *, capture: bool = False) -> str:
        pi = await self.clients.stripe.create_payment_intent(
            amount=amount_minor,
            currency="usd",
            order_key=f"{self.tenant}:{order_id}",
            idempotency_key=f"test-{uuid.uuid4()}",
            payment_method="pm_card_visa",
            confirm=True,
            capture_method="automatic" if capture else "manual",
        )
        return pi.id

    async def receipts(self, workflow_id: str) -> list[Receipt]:
        return await ReceiptStore(self.db).for_workflow(self.tenant, workflow_id)

    async def hitl_rows(self, workflow_id: str) -> list[dict[str, Any]]:
        async with self.db.tenant(self.tenant) as s:
            return await s.fetch_all(
                "SELECT * FROM hitl_requests WHERE tenant_id = %s AND workflow_id = %s "
                "ORDER BY requested_at",
                (self.tenant, workflow_id),
            )

    async def pending_rows(self, workflow_id: str) -> list[dict[str, Any]]:
        """The ``hitl_requests`` rows once one is pending (the workflow shows its request
        before the activity that writes the row has finished)."""

        async def probe() -> list[dict[str, Any]] | None:
            rows = await self.hitl_rows(workflow_id)
            return rows if any(r["status"] == "pending" for r in rows) else None

        return await eventually(probe, what=f"a pending approval row of {workflow_id}")

    async def status_when(
        self, workflow_id: str, predicate: Callable[[FlowStatus], bool], within: float = 30.0
    ) -> FlowStatus:
        async def probe() -> FlowStatus | None:
            try:
                status = await flow_status(self.client, workflow_id)
            except Exception:  # not started yet / no query handler yet
                return None
            return status if predicate(status) else None

        return await eventually(probe, within=within, what=f"status of {workflow_id}")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Wait until ``probe`` returns something (a deadline, not a timed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {within}s")
        await asyncio.sleep(0.1)


# Retry waits a twentieth of production's (same attempts), for the worker's own config:
# flows take their policy from the worker, never from the starter.
QUICK_RETRIES = RetryTiming(interval_scale=0.05)


def tenant_config(tenant: str) -> BusinessConfig:
    config = load_business_config(DEMO_CONFIG)
    return config.model_copy(update={"tenant": tenant, "retries": QUICK_RETRIES})


@pytest.fixture
async def harness(
    temporal_env: WorkflowEnvironment,
    sandbox: Sandbox,
    database: Database,
    tenant: str,
    task_queue: str,
) -> AsyncIterator[Harness]:
    client = await connect(
        Settings(), target_host=temporal_env.client.service_client.config.target_host
    )
    config = tenant_config(tenant)
    tenant_clients = await sandbox.tenant_clients(tenant)
    clients = await tenant_clients.for_tenant(tenant)
    worker = build_worker(
        client, sandbox.settings, tenant_clients, database, {tenant: config}, task_queue=task_queue
    )
    try:
        async with worker:
            yield Harness(
                client, task_queue, tenant, config, sandbox, clients, database, tenant_clients
            )
    finally:
        await tenant_clients.aclose()
