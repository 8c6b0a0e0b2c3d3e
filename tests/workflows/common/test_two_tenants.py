"""Two merchants on one worker, one dev server, one sandbox: each tenant's flows run on
that tenant's own provider accounts, and a flow of one tenant that is pointed at the
other's order or payment moves nothing.

This is the finding "a second tenant's correctly signed orders/paid naming the first
tenant's order made the second tenant's OrderFulfill capture the first tenant's
PaymentIntent": the ingress now refuses such an event (tests/ingress/test_cross_tenant.py);
here the flow itself is started with the foreign ids, as a bug or a forged start would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from autobiz.db.database import Database
from autobiz.ledger.receipts import ReceiptStore
from autobiz.providers.errors import NotFound
from autobiz.providers.tenant_clients import TenantClients
from kernel.config import BusinessConfig
from starters.flows import flow_status
from tests.conftest import new_tenant
from tests.support.orders import authorize, seed_order
from tests.support.sandbox import Sandbox
from tests.workflows.support import (
    connect_to,
    eventually,
    running_worker,
    start_fulfil,
    tenant_config,
)
from workflows.orders.models import OrderFulfillResult

pytestmark = pytest.mark.integration


@dataclass
class Shops:
    client: Client
    task_queue: str
    a: str
    b: str
    configs: dict[str, BusinessConfig]
    clients: TenantClients
    sandbox: Sandbox
    db: Database

    async def seed(self, tenant: str, price: str = "25.00") -> str:
        shop = (await self.clients.for_tenant(tenant)).shop_domain
        return await seed_order(self.sandbox.control, shop, price)

    async def authorize(self, tenant: str, order_id: str) -> str:
        """A $25 authorisation in ``tenant``'s Stripe account, paying for ``order_id``."""
        return await authorize(await self.clients.stripe(tenant), tenant, 2500, order_id)

    async def start(
        self, tenant: str, order_id: str, pi: str
    ) -> WorkflowHandle[Any, OrderFulfillResult]:
        return await start_fulfil(self.client, self.configs[tenant], self.task_queue, order_id, pi)

    async def fails_with(self, tenant: str, order_id: str, pi: str) -> str:
        handle = await self.start(tenant, order_id, pi)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause: BaseException | None = failed.value.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__ or getattr(cause, "cause", None)
        assert cause is not None
        return str(cause.type)


@pytest.fixture
async def shops(
    temporal_env: WorkflowEnvironment,
    sandbox: Sandbox,
    database: Database,
    tenant: str,
    task_queue: str,
) -> AsyncIterator[Shops]:
    b = await new_tenant(database, "b")
    client = await connect_to(temporal_env)
    # tenant_config's quick retries: the not-found grace takes a second, not 15.
    configs = {t: tenant_config(t) for t in (tenant, b)}
    async with running_worker(client, sandbox, database, configs, task_queue) as clients:
        yield Shops(client, task_queue, tenant, b, configs, clients, sandbox, database)


async def test_each_tenants_order_runs_on_its_own_accounts(shops: Shops) -> None:
    s = shops
    for tenant in (s.a, s.b):
        order_id = await s.seed(tenant)
        pi = await s.authorize(tenant, order_id)
        handle = await s.start(tenant, order_id, pi)
        printful_id = await _in_production(s, handle.id)
        stripe = await s.clients.stripe(tenant)
        assert (await stripe.retrieve_payment_intent(pi)).status == "succeeded"
        printful = await s.clients.printful(tenant)
        assert (await printful.get_order(printful_id)).status in ("pending", "inprocess")
        other = s.b if tenant == s.a else s.a
        with pytest.raises(NotFound):
            await (await s.clients.stripe(other)).retrieve_payment_intent(pi)


async def _in_production(s: Shops, workflow_id: str) -> int:
    async def probe() -> int | None:
        try:
            status = await flow_status(s.client, workflow_id)
        except Exception:
            return None
        pf = status.detail.get("printful_order_id")
        return int(pf) if status.state == "in_production" and pf else None

    return await eventually(probe, what=f"{workflow_id} in production")


async def test_a_flow_pointed_at_another_tenants_order_and_payment_moves_nothing(
    shops: Shops,
) -> None:
    s = shops
    order_id = await s.seed(s.a)
    pi = await s.authorize(s.a, order_id)
    # Tenant B's OrderFulfill for A's order, naming A's PaymentIntent.
    error = await s.fails_with(s.b, order_id, pi)
    assert error == "PROVIDER_NOT_FOUND"  # B's shop has no such order; nothing else ran
    intent = await (await s.clients.stripe(s.a)).retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    orders = await s.sandbox.control.printful_orders()
    assert not [o for o in orders if str(o.get("external_id", "")).startswith(order_id[:20])]
    workflow_id = f"order:{s.b}:{order_id}"
    assert await ReceiptStore(s.db).for_workflow(s.b, workflow_id) == []


async def test_a_payment_of_another_order_is_refused_as_an_incident(shops: Shops) -> None:
    s = shops
    paid_for = await s.seed(s.a)
    order_id = await s.seed(s.a)
    pi = await s.authorize(s.a, paid_for)  # pays for another order of A's
    error = await s.fails_with(s.a, order_id, pi)
    assert error == "PAYMENT_NOT_FOR_ORDER"
    intent = await (await s.clients.stripe(s.a)).retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    async with s.db.tenant(s.a) as session:
        rows = await session.fetch_all(
            "SELECT action, detail FROM audit_log WHERE tenant_id = %s "
            "AND action = 'security.PAYMENT_NOT_FOR_ORDER'",
            (s.a,),
        )
    assert [r["detail"]["payment_intent"] for r in rows] == [pi]
