"""A worker with every flow and activity, its clients pointed at the sandbox, one task
queue and one tenant per test; helpers to seed orders and payments."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from autobiz.business_config import load_business_config
from autobiz.db.database import Database
from autobiz.ledger.receipts import Receipt, ReceiptStore
from autobiz.providers.tenant_clients import ProviderClients, TenantClients
from autobiz.settings import Settings
from autobiz.temporal_client import connect
from kernel.config import BusinessConfig
from kernel.policy import RetryTiming
from kernel.tools.printful import PrintfulRecipient
from sandbox.control_client import SandboxControl
from starters.flows import flow_status, request_cancellation, request_refund, start_order
from tests.support.ledger import record_capture
from tests.support.orders import authorize, seed_order
from tests.support.sandbox import Sandbox
from workers.worker import build_worker
from workflows.common.models import ApprovalTiming, FlowStatus
from workflows.orders.models import OrderCancellationResult, OrderFulfillResult
from workflows.payments.models import RefundResult

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
        return await seed_order(
            self.sandbox.control,
            self.clients.shop_domain,
            price,
            financial_status=financial_status,
            quantity=quantity,
        )

    async def authorize(
        self, amount_minor: int, order_id: str, *, capture: bool = False, currency: str = "usd"
    ) -> str:
        return await authorize(
            self.clients.stripe,
            self.tenant,
            amount_minor,
            order_id,
            capture=capture,
            currency=currency,
        )

    async def authorized_order(self, price: str = "25.00") -> tuple[str, str]:
        """An order with its PaymentIntent authorised (not captured) for the whole
        price: (order id, PaymentIntent id)."""
        order_id = await self.seed_order(price)
        return order_id, await self.authorize(minor_units(price), order_id)

    async def captured_order(
        self, price: str = "100.00", *, in_ledger: bool = False
    ) -> tuple[str, str]:
        """A paid order, its PaymentIntent captured for the whole price: (order id,
        PaymentIntent id). ``in_ledger``: our ledger also holds the capture receipt, as
        OrderFulfill leaves it (the CLI refuses a refund of any other payment)."""
        order_id = await self.seed_order(price, financial_status="paid")
        pi = await self.authorize(minor_units(price), order_id, capture=True)
        if in_ledger:
            await record_capture(self.db, self.tenant, order_id, pi, minor_units(price))
        return order_id, pi

    async def start_order(
        self, order_id: str, payment_intent: str | None = None, **options: Any
    ) -> WorkflowHandle[Any, OrderFulfillResult]:
        """OrderFulfill for ``order_id`` on this harness's worker (``options`` as
        :func:`starters.flows.start_order` takes them)."""
        return await start_fulfil(
            self.client, self.config, self.task_queue, order_id, payment_intent, **options
        )

    async def request_refund(
        self,
        order_id: str,
        payment_intent_id: str,
        amount_minor: int,
        *,
        currency: str = "USD",
        timing: ApprovalTiming = FAST,
    ) -> WorkflowHandle[Any, RefundResult]:
        """A Refund with a request id of its own, started without the starter's ledger
        check (as a caller other than the CLI would)."""
        return await request_refund(
            self.client,
            self.config,
            order_id=order_id,
            payment_intent_id=payment_intent_id,
            amount_minor=amount_minor,
            currency=currency,
            task_queue=self.task_queue,
            refund_request_id=f"rr-{uuid.uuid4().hex}",
            timing=timing,
        )

    async def request_cancellation(
        self,
        order_id: str,
        payment_intent_id: str | None,
        *,
        timing: ApprovalTiming = FAST,
        **options: Any,
    ) -> WorkflowHandle[Any, OrderCancellationResult]:
        return await request_cancellation(
            self.client,
            self.config,
            order_id=order_id,
            task_queue=self.task_queue,
            payment_intent_id=payment_intent_id,
            timing=timing,
            **options,
        )

    async def refunded(self, payment_intent_id: str) -> int:
        """What Stripe says was refunded of the PaymentIntent's charge (minor units)."""
        intent = await self.clients.stripe.retrieve_payment_intent(payment_intent_id)
        assert intent.latest_charge is not None
        charge = await self.clients.stripe.sdk.v1.charges.retrieve_async(intent.latest_charge)
        return int(charge.amount_refunded)

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

    async def pending_request(self, workflow_id: str) -> str:
        """The id of the approval request the flow waits on, once it waits on one."""
        status = await self.status_when(
            workflow_id, lambda s: s.approval is not None and s.approval.status == "pending"
        )
        assert status.approval is not None
        return status.approval.request_id

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


async def ship_printful(control: SandboxControl, pf_id: int, carrier: str = "USPS") -> str:
    """Printful ships the order; the tracking number is the one its ``shipment_sent``
    webhook carries (Printful's shipment listing has none), returned for the signal."""
    tracking = f"1Z{pf_id}"
    await control.advance_printful(pf_id, "ship", carrier=carrier, tracking_number=tracking)
    return tracking


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


def minor_units(price: str) -> int:
    """``"25.00"`` -> 2500 (the sandbox's prices have two decimals)."""
    return int(price.replace(".", ""))


async def start_fulfil(
    client: Client,
    config: BusinessConfig,
    task_queue: str,
    order_id: str,
    payment_intent: str | None = None,
    **options: Any,
) -> WorkflowHandle[Any, OrderFulfillResult]:
    """OrderFulfill shipping to :data:`SHIP_TO`, approvals on :data:`FAST` timing."""
    return await start_order(
        client,
        config,
        order_id=order_id,
        task_queue=task_queue,
        payment_intent=payment_intent,
        ship_to=SHIP_TO,
        timing=FAST,
        **options,
    )


async def connect_to(temporal_env: WorkflowEnvironment) -> Client:
    """A client of our own (our data converter) on the session's dev server."""
    return await connect(
        Settings(), target_host=temporal_env.client.service_client.config.target_host
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    sandbox: Sandbox,
    database: Database,
    configs: dict[str, BusinessConfig],
    task_queue: str,
) -> AsyncIterator[TenantClients]:
    """A worker with every flow and activity for ``configs``' tenants, running on
    ``task_queue``; yields the provider clients it uses (pointed at the sandbox)."""
    tenant_clients = await sandbox.tenant_clients(*configs)
    worker = build_worker(
        client, sandbox.settings, tenant_clients, database, configs, task_queue=task_queue
    )
    try:
        async with worker:
            yield tenant_clients
    finally:
        await tenant_clients.aclose()


@asynccontextmanager
async def running_harness(
    client: Client,
    sandbox: Sandbox,
    database: Database,
    tenant: str,
    task_queue: str,
    config: BusinessConfig | None = None,
) -> AsyncIterator[Harness]:
    """A :class:`Harness` for ``tenant`` over a worker connected through ``client``, with
    ``config`` (default: :func:`tenant_config`'s)."""
    config = config or tenant_config(tenant)
    async with running_worker(
        client, sandbox, database, {tenant: config}, task_queue
    ) as tenant_clients:
        clients = await tenant_clients.for_tenant(tenant)
        yield Harness(
            client, task_queue, tenant, config, sandbox, clients, database, tenant_clients
        )


def harness_fixture(name: str, configure: Callable[[str], BusinessConfig]) -> Any:
    """A fixture ``name``: a :class:`Harness` on the session's dev server whose worker
    runs the test tenant with ``configure(tenant)`` as its config."""

    async def fixture(
        temporal_env: WorkflowEnvironment,
        sandbox: Sandbox,
        database: Database,
        tenant: str,
        task_queue: str,
    ) -> AsyncIterator[Harness]:
        client = await connect_to(temporal_env)
        config = configure(tenant)
        async with running_harness(client, sandbox, database, tenant, task_queue, config) as h:
            yield h

    return pytest.fixture(name=name)(fixture)


harness = harness_fixture("harness", tenant_config)


class HeldActivity(ClientInterceptor, Interceptor):
    """Holds the activities ``picks`` chooses (by their ``activity.Info``) for ``seconds``
    before they run, and sets ``begun`` when one is held: a worker that is busy, or
    that replays from history, gives the same order of events. Pass it in the client's
    ``interceptors``; the harness's worker takes it from there."""

    def __init__(self, picks: Callable[[activity.Info], bool], seconds: float) -> None:
        self.picks = picks
        self.seconds = seconds
        self.begun = asyncio.Event()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Held(next, self)


class _Held(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, held: HeldActivity) -> None:
        super().__init__(next)
        self.held = held

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if self.held.picks(activity.info()):
            self.held.begun.set()
            await asyncio.sleep(self.held.seconds)
        return await self.next.execute_activity(input)
