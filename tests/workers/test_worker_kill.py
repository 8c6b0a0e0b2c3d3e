"""Chaos at the worker (DESIGN §9): the real `autobiz worker` process, killed with SIGKILL
in the middle of a side effect and restarted, finishes the order with every side effect
done exactly once; SIGTERM lets the in-flight activity finish and exits 0.

The kill has to land while the activity runs: the sandbox holds the provider request
(a latency fault) and the test kills the worker once the request has reached the
provider and Temporal shows the activity started. Temporal retries the attempt when its
start-to-close timeout (the tool contract's) runs out, on the new worker, with the same
idempotency keys.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from autobiz.db.database import Database
from autobiz.ledger.receipts import ReceiptStore
from autobiz.providers.tenant_clients import ProviderClients, TenantClients
from autobiz.secrets import CredentialStore, MappingSecretsBackend
from autobiz.settings import Environment, Settings
from autobiz.temporal_client import connect
from sandbox.accounts import credentials_of
from sandbox.server import ServerThread
from sandbox.state import SandboxState
from starters.flows import flow_status
from tests.support.orders import authorize, seed_order
from tests.support.postgres import ProvisionedDatabase
from tests.support.sandbox import Sandbox, sandbox, sandbox_server  # noqa: F401
from tests.workflows.support import (
    DEMO_CONFIG,
    eventually,
    ship_printful,
    start_fulfil,
    tenant_config,
)
from workflows.ids import printful_external_id
from workflows.orders.models import OrderFulfillResult, ShipmentNotice

pytestmark = pytest.mark.integration

# A killed attempt is retried once its start-to-close timeout (30 s for these tools) has
# passed and the retry policy's first interval after that; generous deadlines on top.
RECOVERY_SECONDS = 150.0
# Long enough that the kill lands while the provider is still holding the request.
HOLD_MS = 6000


@dataclass(frozen=True)
class KillPoint:
    tool: str  # the activity type Temporal shows
    method: str
    path: str  # sandbox fault glob


KILL_POINTS = {
    "stripe_capture": KillPoint(
        "stripe.capture_payment@1", "POST", "/stripe/v1/payment_intents/*/capture"
    ),
    "printful_create": KillPoint("printful.create_order@1", "POST", "/printful/v2/orders"),
}
EXPECTED_TOOLS = [
    "stripe.capture_payment",
    "printful.create_order",
    "printful.confirm_order",
    "shopify.create_fulfillment",
    "sendgrid.send_email",
]


@dataclass
class WorkerProcess:
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self) -> None:
        async def polling() -> bool | None:
            if self.proc.returncode is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.output}")
            return True if "worker polling" in self.output else None

        await eventually(polling, within=90, what="the worker to poll")

    async def exit_code(self, within: float = 60) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout=within)


@dataclass
class Rig:
    """Everything a test needs around the worker processes it starts."""

    client: Client
    sandbox: Sandbox
    state: SandboxState  # the sandbox's in-process state (provider truth, read only)
    clients: ProviderClients
    db: Database
    tenant: str
    task_queue: str
    env: dict[str, str]
    workdir: Path
    started: list[WorkerProcess] = field(default_factory=list)

    async def spawn(self) -> WorkerProcess:
        log = self.workdir / f"worker-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "autobiz.cli.main",
                "worker",
                env=self.env,
                cwd=str(self.workdir),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log)
        self.started.append(worker)
        await worker.ready()
        return worker

    async def seed_authorized_order(self, price: str, amount_minor: int) -> tuple[str, str]:
        order_id = await seed_order(self.sandbox.control, self.clients.shop_domain, price)
        return order_id, await authorize(self.clients.stripe, self.tenant, amount_minor, order_id)

    async def start_order(self, order_id: str, pi: str) -> WorkflowHandle[Any, OrderFulfillResult]:
        """OrderFulfill on the task queue the spawned workers poll."""
        return await start_fulfil(
            self.client, tenant_config(self.tenant), self.task_queue, order_id, pi
        )

    async def hold_next(self, point: KillPoint) -> None:
        await self.sandbox.control.fault(
            "latency", point.path, method=point.method, latency_ms=HOLD_MS
        )

    async def started_attempt(self, handle: WorkflowHandle[Any, Any], tool: str) -> int | None:
        """The attempt number of ``tool`` while Temporal shows it started, else None."""
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if (
                pending.activity_type.name == tool
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                return pending.attempt
        return None

    async def pending(self, handle: WorkflowHandle[Any, Any]) -> list[str]:
        """The workflow's pending activities with their last failure, for failure messages."""
        out = []
        description = await handle.describe()
        for p in description.raw_description.pending_activities:
            last = ""
            if p.HasField("last_failure"):
                error = await self.client.data_converter.decode_failure(p.last_failure)
                last = f": {type(error).__name__}: {error}"
                cause = error.__cause__
                if cause is not None:
                    last += f" ({type(cause).__name__}: {cause})"
            out.append(f"{p.activity_type.name} attempt {p.attempt}{last}")
        return out

    async def in_flight(self, handle: WorkflowHandle[Any, Any], point: KillPoint) -> None:
        """Wait until the held request reached the provider and the activity is started."""

        async def held() -> bool | None:
            async with httpx.AsyncClient(
                base_url=self.sandbox.url, headers=self.sandbox.control.auth_headers
            ) as http:
                rules = (await http.get("/_control/faults")).json()["rules"]
            if any(r["path"] == point.path for r in rules):
                return None  # the request has not reached the provider yet
            return True if await self.started_attempt(handle, point.tool) == 1 else None

        await eventually(held, within=60, what=f"{point.tool} in flight")

    async def ship(self, handle: WorkflowHandle[Any, OrderFulfillResult]) -> OrderFulfillResult:
        """Ship the Printful order once the flow is in production; the flow's result."""

        async def in_production() -> int | None:
            try:
                status = await flow_status(self.client, handle.id)
            except Exception:  # no worker has answered the query yet
                return None
            if status.state != "in_production":
                return None
            return int(status.detail["printful_order_id"])

        try:
            pf_id = await eventually(in_production, within=RECOVERY_SECONDS, what="in_production")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; pending: {await self.pending(handle)}") from None
        tracking = await ship_printful(self.sandbox.control, pf_id)
        await handle.signal(
            "printful_shipment", ShipmentNotice(carrier="USPS", tracking_number=tracking)
        )
        return await asyncio.wait_for(handle.result(), timeout=RECOVERY_SECONDS)


def _worker_env(
    *, temporal: str, sandbox_url: str, app_dsn: str, config_dir: Path, task_queue: str
) -> dict[str, str]:
    host, port = temporal.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env.update(
        AUTOBIZ_ENV="test",
        AUTOBIZ_LOG_LEVEL="INFO",
        AUTOBIZ_TEMPORAL__HOST=host,
        AUTOBIZ_TEMPORAL__PORT=port,
        AUTOBIZ_TEMPORAL__TASK_QUEUE=task_queue,
        AUTOBIZ_APP_DATABASE_URL=app_dsn,
        AUTOBIZ_CONFIG_DIR=str(config_dir),
        AUTOBIZ_STRIPE__API_BASE=f"{sandbox_url}/stripe",
        AUTOBIZ_SHOPIFY__API_BASE=f"{sandbox_url}/shopify",
        AUTOBIZ_PRINTFUL__API_BASE=f"{sandbox_url}/printful",
        AUTOBIZ_SENDGRID__API_BASE=f"{sandbox_url}/sendgrid",
        AUTOBIZ_WORKER__GRACEFUL_SHUTDOWN_SECONDS="30",
    )
    return env


@pytest.fixture
async def rig(
    temporal_env: WorkflowEnvironment,
    sandbox: Sandbox,  # noqa: F811
    sandbox_server: ServerThread,  # noqa: F811
    pg_database: ProvisionedDatabase,
    database: Database,
    tenant: str,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    target = temporal_env.client.service_client.config.target_host
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    text = DEMO_CONFIG.read_text().replace("tenant: demo-shop", f"tenant: {tenant}", 1)
    (config_dir / f"{tenant}.yaml").write_text(text)
    client = await connect(Settings(env=Environment.TEST), target_host=target)
    account = await sandbox.host(tenant)
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump({tenant: credentials_of(account)}))
    tenant_clients = TenantClients(
        sandbox.settings,
        CredentialStore(MappingSecretsBackend({tenant: credentials_of(account)})),
    )
    clients = await tenant_clients.for_tenant(tenant)
    env = _worker_env(
        temporal=target,
        sandbox_url=sandbox.url,
        app_dsn=pg_database.app_dsn,
        config_dir=config_dir,
        task_queue=task_queue,
    )
    env["AUTOBIZ_SECRETS_FILE"] = str(secrets_file)
    app: Any = sandbox_server.server.config.app
    state: SandboxState = app.state.sandbox
    rig = Rig(client, sandbox, state, clients, database, tenant, task_queue, env, tmp_path)
    try:
        yield rig
    finally:
        for worker in rig.started:  # only the processes this test started, by handle
            if worker.proc.returncode is None:
                worker.proc.kill()
                await worker.proc.wait()
        await tenant_clients.aclose()


def _activity_attempts(events: list[Any], tool: str) -> list[int]:
    """Attempt numbers of ``tool``'s recorded starts (one per scheduled activity)."""
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == tool
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


def _completed(events: list[Any], tool: str) -> int:
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == tool
    }
    return _count(
        events,
        lambda e: (
            e.HasField("activity_task_completed_event_attributes")
            and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
        ),
    )


def _count(items: list[Any], predicate: Callable[[Any], bool]) -> int:
    return sum(1 for item in items if predicate(item))


@pytest.mark.parametrize("where", list(KILL_POINTS))
async def test_worker_killed_mid_activity_recovers_exactly_once(rig: Rig, where: str) -> None:
    point = KILL_POINTS[where]
    order_id, pi = await rig.seed_authorized_order("25.00", 2500)
    await rig.hold_next(point)
    first = await rig.spawn()
    handle = await rig.start_order(order_id, pi)

    await rig.in_flight(handle, point)
    first.proc.kill()  # SIGKILL: no shutdown path runs
    assert await first.exit_code() == -signal.SIGKILL
    # The kill landed mid-activity: Temporal still holds the first attempt as started.
    assert await rig.started_attempt(handle, point.tool) == 1

    await rig.spawn()
    result = await rig.ship(handle)
    assert result.state == "completed" and result.captured_minor == 2500

    # The killed attempt was retried (attempt 2) on the new worker, and scheduled once.
    events = list((await handle.fetch_history()).events)
    assert _activity_attempts(events, point.tool) == [2]
    # Provider truth: one capture, one Printful order, one fulfillment, one email.
    stripe_events = rig.state.stripe.events
    assert (
        _count(
            stripe_events,
            lambda e: (
                e["type"] == "charge.captured" and e["data"]["object"]["payment_intent"] == pi
            ),
        )
        == 1
    )
    intent = await rig.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "succeeded" and intent.amount_received == 2500
    external_id = printful_external_id(rig.tenant, order_id)
    orders = [o for o in rig.state.printful.orders.values() if o["external_id"] == external_id]
    assert len(orders) == 1 and orders[0]["status"] == "fulfilled"
    assert len(rig.state.shopify.orders[int(order_id)]["fulfillments"]) == 1
    outbox = await rig.sandbox.control.outbox()
    assert [m["recipients"] for m in outbox] == [["customer@example.com"]]
    # Our ledger: one receipt per side effect, the capture with its amount.
    receipts = await ReceiptStore(rig.db).for_workflow(rig.tenant, handle.id)
    assert [r.tool for r in receipts] == EXPECTED_TOOLS
    assert receipts[0].amount_minor == 2500 and receipts[0].currency == "USD"


async def test_sigterm_finishes_the_in_flight_activity_and_exits_zero(rig: Rig) -> None:
    point = KILL_POINTS["printful_create"]
    order_id, pi = await rig.seed_authorized_order("25.00", 2500)
    await rig.hold_next(point)
    first = await rig.spawn()
    handle = await rig.start_order(order_id, pi)
    await rig.in_flight(handle, point)

    first.proc.send_signal(signal.SIGTERM)
    assert await first.exit_code() == 0, first.output
    assert "shutting down" in first.output
    # The attempt in flight finished before the process exited: completed, not retried.
    events = list((await handle.fetch_history()).events)
    assert _activity_attempts(events, point.tool) == [1]
    assert _completed(events, point.tool) == 1
    assert await rig.started_attempt(handle, point.tool) is None

    # The next worker takes the flow from there; nothing is done twice.
    await rig.spawn()
    result = await rig.ship(handle)
    assert result.state == "completed"
    external_id = printful_external_id(rig.tenant, order_id)
    assert (
        _count(list(rig.state.printful.orders.values()), lambda o: o["external_id"] == external_id)
        == 1
    )
    receipts = await ReceiptStore(rig.db).for_workflow(rig.tenant, handle.id)
    assert [r.tool for r in receipts] == EXPECTED_TOOLS
