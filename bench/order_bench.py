"""OrderFulfill through the full kernel vs a bare workflow: throughput and worker memory
(DESIGN §13, issue 5).

One run, one machine, one Temporal dev server, one PostgreSQL (a scratch database,
created, migrated and dropped), one sandbox:

* **order**: OrderFulfill exactly as production runs it (``starters.flows`` start
  options, context in the input, the AES-GCM codec), every tool through ``kernel_call``
  against the sandbox. The shipment notice rides on the start (signal-with-start
  ``printful_shipment``), so nothing waits. Orders are $25, authorised, shipped to GB:
  below every approval threshold, low risk.
* **bare**: ``bench/bare_workflow.py``. The same activity types, in the same order and
  count as one OrderFulfill history shows (the database plumbing included), each a no-op.
* **bare+http**: the same bare workflow, but each provider tool's activity makes the
  same provider requests as the real tool (no gate, store, receipts, trace or projection).
* **bare calls** (B1's baseline): only the provider calls an order needs, each a plain
  activity making the same requests with the same clients against the same sandbox; no
  plumbing activity at all.

Approvals (B2, ``--approvals M``, on by default): M OrderFulfill runs above the capture
approval threshold wait for a decision; one at a time, a signed ``decide`` update is sent
and its round trip timed (update accepted and applied, the workflow goes on), alternating
with a ``decide`` update on a bare workflow that only waits for it (``BenchBareApproval``).

Memory (B6, ``--memory``): only OrderFulfill, 10 000 runs (``--n``), worker RSS after
1 000 and at the end, and the time it took.

All three run on one worker process, on one task queue, with the production worker's
settings (``workers.worker.build_worker``'s options, Prometheus metrics on). The
driver, the sandbox, the worker, the dev server and PostgreSQL are separate processes.
N workflows of each kind run in ``--rounds`` chunks, the kinds alternating, with C in
flight. Throughput is workflows completed per second of chunk wall time. Worker RSS is
sampled after the warm-up and after each chunk of OrderFulfill.

    python bench/order_bench.py [--n 2000] [--concurrency 20] [--rounds 4] [--quick]
                                [--approvals 30] [--memory]

Needs PostgreSQL: ``AUTOBIZ_BENCH_DATABASE_URL`` or the same discovery the tests use
(127.0.0.1:5432, Docker, embedded). The seed data (orders, PaymentIntents) is made
before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import free_port, scratch_database, wait_http  # noqa: E402

TENANT = "bench-shop"
PRICE_MINOR = 2500


def bench_config() -> Any:
    from autobiz.business_config import load_business_config

    config = load_business_config(ROOT / "config" / "demo-shop.yaml")
    return config.model_copy(update={"tenant": TENANT})


def provider_settings(sandbox_url: str) -> Any:
    from autobiz.settings import Settings
    from tests.support.sandbox import sandbox_settings

    settings: Settings = sandbox_settings(sandbox_url, timeout=30.0)
    return settings.model_copy(update={"log_level": "WARNING"})


# -- the sandbox process (--serve-sandbox PORT) -----------------------------------------


def serve_sandbox(port: int) -> None:
    import uvicorn

    from sandbox.app import build_app

    # A keep-alive longer than the clients' idle gaps: no "server disconnected" retries.
    app = build_app(provider_settings("http://127.0.0.1:1"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=75)


# -- the worker process (--serve-worker JSON) -------------------------------------------


async def serve_worker(cfg: dict[str, Any]) -> None:
    """The production worker's workflows, activities and options, plus the baseline."""
    from temporalio.worker import Worker

    from autobiz.db.database import Database
    from autobiz.ledger.riding_projection import RidingProjection
    from autobiz.settings import WorkerSettings
    from autobiz.temporal_client import connect
    from bench.bare_workflow import BareActivities, BareApprovalWorkflow, BareWorkflow
    from workers.bytecode import write_bytecode
    from workers.worker import WORKFLOWS, activities, metrics_runtime, tenant_clients

    settings = provider_settings(cfg["sandbox_url"])
    # The settings' provider credentials are the bench tenant's (its sandbox account).
    settings = settings.model_copy(
        update={
            "worker": WorkerSettings(metrics_bind=cfg["metrics_bind"]),
            "ingress": settings.ingress.model_copy(update={"default_tenant": TENANT}),
        }
    )
    w = settings.worker
    client = await connect(settings, target_host=cfg["target"], runtime=metrics_runtime(settings))
    clients = tenant_clients(settings)
    db = Database(
        cfg["app_dsn"],
        None,
        min_size=settings.postgres.pool_min_size,
        max_size=settings.postgres.pool_max_size,
    )
    if cfg.get("lean_pool"):
        # Experiment, not the product: no liveness check when a connection is borrowed,
        # not even after 5 s idle.
        db._app_pool._check = None
    write_bytecode([*WORKFLOWS, BareWorkflow, BareApprovalWorkflow])  # as build_worker does
    async with db:
        worker = Worker(  # the options of workers.worker.build_worker
            client,
            task_queue=cfg["task_queue"],
            workflows=[*WORKFLOWS, BareWorkflow, BareApprovalWorkflow],
            activities=[
                *activities(
                    clients,
                    db,
                    {TENANT: bench_config()},
                    high_risk_countries=w.high_risk_countries,
                ),
                BareActivities(await clients.for_tenant(TENANT)).dispatch,
            ],
            max_concurrent_activities=w.max_concurrent_activities,
            max_concurrent_workflow_tasks=w.max_concurrent_workflow_tasks,
            graceful_shutdown_timeout=timedelta(seconds=w.graceful_shutdown_seconds),
            # The projection rows that ride with the calls; no breaker guard, as before.
            interceptors=[RidingProjection(db)],
        )
        async with worker:
            print("READY", flush=True)
            # Runs until the driver closes our stdin.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await clients.aclose()


# -- processes and the database ---------------------------------------------------------


@contextmanager
def sandbox_process(port: int, log: Path) -> Iterator[tuple[str, int]]:
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-sandbox", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_control/health")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def worker_process(cfg: dict[str, Any], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-worker", json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"the worker did not start; see {log}")
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=20)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class CpuMeter:
    """CPU seconds (user + system) used by each part of the system under test.

    PostgreSQL is counted over the backends connected to the scratch database only
    (other databases on the same server are not ours); the dev server is the
    ``temporal`` child of this process; ``driver`` is this process.
    """

    def __init__(self, pids: dict[str, int], admin_dsn: str) -> None:
        import psutil

        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._procs["driver"] = psutil.Process()
        server = [p for p in psutil.Process().children(recursive=True) if "temporal" in p.name()]
        if server:
            self._procs["temporal"] = server[0]
        self._admin_dsn = admin_dsn

    def _postgres(self) -> float:
        import psutil
        import psycopg

        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        total = 0.0
        for (pid,) in rows:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def snapshot(self) -> dict[str, float]:
        out = {}
        for name, proc in self._procs.items():
            t = proc.cpu_times()
            out[name] = t.user + t.system
        out["postgres"] = self._postgres()
        return out


@contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """Sample the worker with py-spy (collapsed stacks) while the block runs."""
    if output is None:
        yield
        return
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # attached
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


# -- the driver -------------------------------------------------------------------------


@dataclass
class Seeded:
    order_id: str
    payment_intent: str


@dataclass
class Kind:
    name: str
    label: str
    seconds: float = 0.0
    completed: int = 0
    failed: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    n: int
    concurrency: int
    rounds: int
    activities: list[str]
    kinds: dict[str, Kind]
    rss: list[tuple[int, float]]
    load_before: str
    load_after: str
    metrics: dict[str, float]
    logs: Path
    lean_pool: bool
    shapes: dict[str, str]
    approvals: dict[str, list[float]] = field(default_factory=dict)
    memory_seconds: float | None = None


async def seed(
    sandbox_url: str, count: int, concurrency: int = 16, price_minor: int = PRICE_MINOR
) -> list[Seeded]:
    """Shopify orders (authorised, $25 unless told) with an authorised PaymentIntent each."""
    from autobiz.providers.stripe_client import StripePayments
    from sandbox.control_client import SandboxControl
    from tests.support.orders import authorize, seed_order

    control = SandboxControl(sandbox_url)
    stripe = StripePayments(provider_settings(sandbox_url))
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Seeded:
        async with gate:
            order_id = await seed_order(control, None, f"{price_minor / 100:.2f}")
            return Seeded(order_id, await authorize(stripe, TENANT, price_minor, order_id))

    try:
        return list(await asyncio.gather(*(one() for _ in range(count))))
    finally:
        await stripe.aclose()
        await control.aclose()


class Driver:
    def __init__(self, client: Any, task_queue: str, activities: list[str]) -> None:
        from activities.config_activities import flow_context

        self.client = client
        self.task_queue = task_queue
        self.activities = activities
        self.last_bare = ""
        self.context = flow_context(bench_config(), "order_fulfill")

    async def order(self, s: Seeded) -> str:
        handle = await self.start_order(s)
        result = await handle.result()
        return "" if result.state == "completed" else f"{handle.id}: {result.state}"

    async def start_order(self, s: Seeded) -> Any:
        from temporalio.common import (
            SearchAttributePair,
            TypedSearchAttributes,
            WorkflowIDConflictPolicy,
            WorkflowIDReusePolicy,
        )

        from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
        from tests.workflows.support import SHIP_TO
        from workflows.ids import ORDER_FULFILL, order_workflow_id
        from workflows.orders.models import OrderFulfillInput, OrderFulfillResult, ShipmentNotice

        # starters.flows.start_order's options, plus the shipment notice on the start.
        handle = await self.client.start_workflow(
            ORDER_FULFILL.type,
            OrderFulfillInput(
                tenant_id=TENANT,
                order_id=s.order_id,
                payment_intent=s.payment_intent,
                ship_to=SHIP_TO,
                context=self.context,
                principal="bench:driver",
            ),
            id=order_workflow_id(TENANT, s.order_id),
            task_queue=self.task_queue,
            result_type=OrderFulfillResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID, TENANT),
                    SearchAttributePair(ORDER_ID, s.order_id),
                    SearchAttributePair(FLOW_STATE, "received"),
                    SearchAttributePair(APPROVAL_PENDING, False),
                ]
            ),
            start_signal="printful_shipment",
            start_signal_args=[ShipmentNotice(carrier="USPS", tracking_number=f"B{s.order_id}")],
        )
        return handle

    async def bare(self, s: Seeded, *, http: bool, calls_only: bool = False) -> str:
        from bench.bare_workflow import BARE_WORKFLOW, BareInput, provider_calls
        from tests.workflows.support import SHIP_TO
        from workflows.ids import printful_external_id

        carry = {
            "order_id": s.order_id,
            "payment_intent": s.payment_intent,
            "external_id": printful_external_id(TENANT, s.order_id),
            "recipient": SHIP_TO.model_dump(mode="json"),
            "email": "customer@example.com",
        }
        activities = provider_calls(self.activities) if calls_only else self.activities
        self.last_bare = f"bench-bare-{uuid.uuid4()}"
        done = await self.client.execute_workflow(
            BARE_WORKFLOW,
            BareInput(activities=activities, http=http, carry=carry),
            id=self.last_bare,
            task_queue=self.task_queue,
            result_type=int,
        )
        return "" if done == len(activities) else f"bare ran {done} activities"

    def runner(self, kind: str) -> Callable[[Seeded], Awaitable[str]]:
        if kind == "order":
            return self.order
        http = kind in ("bare_http", "bare_calls")
        calls_only = kind == "bare_calls"

        async def run(s: Seeded) -> str:
            return await self.bare(s, http=http, calls_only=calls_only)

        return run


async def run_chunk(
    run: Callable[[Seeded], Awaitable[str]], items: list[Seeded], concurrency: int
) -> tuple[float, int, list[str]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(s: Seeded) -> str:
        async with gate:
            try:
                return await run(s)
            except Exception as exc:  # reported, not fatal: the figures say how many
                return f"{type(exc).__name__}: {exc}"

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(s) for s in items))
    wall = time.perf_counter() - started
    failed = [o for o in outcomes if o]
    return wall, len(items) - len(failed), failed


def local_activity_type(event: Any) -> str | None:
    """The activity type of a local activity's marker (None: another event)."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    data = json.loads(marker.details["data"].payloads[0].data)
    return str(data.get("activity_type") or data.get("activityType"))


async def order_activities(client: Any, workflow_id: str) -> list[str]:
    """Activity types one OrderFulfill ran, in order, from its history: the scheduled
    ones and the local ones (their markers), so the bare baselines run the same list
    whichever way the kernel runs them."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            names.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif (local := local_activity_type(e)) is not None:
            names.append(local)
    return names


async def history_shape(client: Any, workflow_id: str) -> str:
    """Events, activities (remote / local), search-attribute upserts and encoded bytes
    in one run's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kind = "upsert_workflow_search_attributes_event_attributes"
    upserts = sum(1 for e in history.events if e.HasField(kind))
    scheduled = "activity_task_scheduled_event_attributes"
    remote = sum(1 for e in history.events if e.HasField(scheduled))
    local = sum(1 for e in history.events if local_activity_type(e) is not None)
    size = sum(e.ByteSize() for e in history.events)
    return (
        f"{len(history.events)} events, {remote} activities + {local} local, "
        f"{upserts} search-attribute upserts, {size} bytes"
    )


async def scrape(url: str) -> dict[str, float]:
    import httpx

    async with httpx.AsyncClient() as http:
        text = (await http.get(url)).text
    sums: dict[str, float] = {}
    pattern = re.compile(r"^(autobiz_\w+?)(?:\{(.*)\})?\s+(\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match is None or match.group(1).endswith(("_bucket", "_sum")):
            continue
        name, labels, value = match.groups()
        outcome = re.search(r'outcome="([^"]*)"', labels or "")
        key = f"{name}{{{outcome.group(1)}}}" if outcome else name
        sums[key] = sums.get(key, 0.0) + float(value)
    return sums


async def timed_update(send: Callable[[], Awaitable[Any]]) -> float:
    """Seconds of one update's round trip; a decision sent while the request is still
    opening (``DECISION_NOT_READY``) is sent again and only the last try is timed."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError

    from kernel.codes import ErrorCode

    for _ in range(100):
        started = time.perf_counter()
        try:
            await send()
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == ErrorCode.DECISION_NOT_READY:
                await asyncio.sleep(0.05)
                continue
            raise
        return time.perf_counter() - started
    raise RuntimeError("the decision was never ready")


async def wait_first_task(client: Any, workflow_id: str) -> None:
    """Until the run's first workflow task has completed (it waits for its update)."""
    from temporalio.api.enums.v1 import EventType

    done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    for _ in range(400):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        if any(e.event_type == done for e in history.events):
            return
        await asyncio.sleep(0.025)
    raise RuntimeError(f"{workflow_id} never ran its first task")


async def approval_round_trips(
    driver: Driver, admin_dsn: str, app_dsn: str, items: list[Seeded]
) -> dict[str, list[float]]:
    """B2: one at a time, a signed ``decide`` on an OrderFulfill waiting for its capture
    approval, then a ``decide`` on a bare workflow; each round trip in seconds."""
    from autobiz.db.database import Database
    from bench.bare_workflow import BARE_APPROVAL_WORKFLOW, BARE_DECIDE_UPDATE
    from tests.support.approver_keys import Approvers
    from workflows.common.handlers import ApprovalHandlers

    client = driver.client
    times: dict[str, list[float]] = {"autobiz": [], "bare": []}
    async with Database(app_dsn, admin_dsn, min_size=1, max_size=2) as db:
        keys = Approvers(db, TENANT)
        await keys.register("ana")  # finance: the capture rule's role
        handles = list(await asyncio.gather(*(driver.start_order(s) for s in items)))
        for handle in handles:
            decision = await keys.decision(client, handle.id, "ana", True)
            send = partial(handle.execute_update, ApprovalHandlers.decide, decision)
            times["autobiz"].append(await timed_update(send))
            result = await handle.result()
            if result.state != "completed":
                raise RuntimeError(f"{handle.id} ended {result.state} after its approval")
            bare = await client.start_workflow(
                BARE_APPROVAL_WORKFLOW,
                id=f"bench-approval-{uuid.uuid4()}",
                task_queue=driver.task_queue,
                result_type=bool,
            )
            await wait_first_task(client, bare.id)
            body = decision.model_dump(mode="json")
            times["bare"].append(
                await timed_update(
                    partial(bare.execute_update, BARE_DECIDE_UPDATE, body, result_type=dict)
                )
            )
            if not await bare.result():
                raise RuntimeError(f"{bare.id} did not take the approval")
    return times


async def bench(
    n: int,
    concurrency: int,
    rounds: int,
    profile: Path | None,
    lean_pool: bool,
    approvals: int = 0,
    memory: bool = False,
) -> Report:
    from temporalio.testing import WorkflowEnvironment

    from autobiz.devstack.services import temporal_binary
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
    from autobiz.settings import Settings
    from autobiz.temporal_client import connect

    load_before = loadavg()
    warm = max(5, min(20, n // 20))
    chunk = n // rounds
    n = chunk * rounds
    kinds = {"order": Kind("order", "OrderFulfill (full kernel)")}
    if not memory:
        kinds["bare"] = Kind("bare", "bare, no-op activities")
        kinds["bare_http"] = Kind("bare_http", "bare + same provider HTTP")
        kinds["bare_calls"] = Kind("bare_calls", "bare, only the provider calls")
    # The kinds that call providers each get their own orders (a capture happens once).
    seeded_kinds = [name for name in kinds if name != "bare"]
    logs = Path(tempfile.mkdtemp(prefix="autobiz-order-bench-"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=[TENANT_ID, ORDER_ID, FLOW_STATE, APPROVAL_PENDING],
        dev_server_log_level="error",
    )
    approval_times: dict[str, list[float]] = {}
    memory_seconds: float | None = None
    try:
        target = env.client.service_client.config.target_host
        with (
            scratch_database(TENANT) as (admin_dsn, app_dsn),
            sandbox_process(free_port(), logs / "sandbox.log") as (sb, sandbox_pid),
        ):
            total = len(seeded_kinds) * (n + warm)
            print(f"seeding {total + approvals} orders and PaymentIntents…", file=sys.stderr)
            seeded = await seed(sb, total)
            above_threshold = await seed(sb, approvals, price_minor=60000) if approvals else []
            warmups: dict[str, list[Seeded]] = {}
            timed: dict[str, list[Seeded]] = {}
            for i, name in enumerate(seeded_kinds):
                mine = seeded[i * (n + warm) : (i + 1) * (n + warm)]
                warmups[name], timed[name] = mine[:warm], mine[warm:]
            warmups["bare"], timed["bare"] = warmups["order"], timed["order"]
            cfg: dict[str, Any] = {
                "target": target,
                "task_queue": f"bench-{uuid.uuid4()}",
                "app_dsn": app_dsn,
                "sandbox_url": sb,
                "metrics_bind": f"127.0.0.1:{free_port()}",
                "lean_pool": lean_pool,
            }
            with worker_process(cfg, logs / "worker.log") as worker:
                client = await connect(Settings(), target_host=target)
                driver = Driver(client, cfg["task_queue"], [])
                # Warm-up (untimed): imports, the sandbox's caches, the pools.
                _, ok, failed = await run_chunk(driver.order, warmups["order"], concurrency)
                if failed:
                    raise RuntimeError(f"warm-up OrderFulfill failed: {failed[:3]}; see {logs}")
                from workflows.ids import order_workflow_id

                first = order_workflow_id(TENANT, warmups["order"][0].order_id)
                driver.activities = await order_activities(client, first)
                shapes = {"order": await history_shape(client, first)}
                for name in kinds:
                    if name != "order":
                        await run_chunk(driver.runner(name), warmups[name], concurrency)
                        shapes[name] = await history_shape(client, driver.last_bare)
                rss = [(0, rss_mib(worker.pid))]
                cpu = CpuMeter({"worker": worker.pid, "sandbox": sandbox_pid}, admin_dsn)
                order_done = 0
                names = list(kinds)
                began = time.perf_counter()
                for r in range(rounds):
                    print(f"round {r + 1}/{rounds}", file=sys.stderr)
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        items = timed[name][r * chunk : (r + 1) * chunk]
                        before = cpu.snapshot()
                        out = profile.with_name(f"{profile.name}-{name}.txt") if profile else None
                        with py_spy(worker.pid, out if r == 0 else None):
                            wall, ok, failed = await run_chunk(
                                driver.runner(name), items, concurrency
                            )
                        after = cpu.snapshot()
                        kind = kinds[name]
                        for part, used in after.items():
                            kind.cpu[part] = kind.cpu.get(part, 0.0) + used - before.get(part, 0)
                        kind.seconds += wall
                        kind.completed += ok
                        kind.failed += failed
                        print(
                            f"  {name:10} {ok:5} in {wall:6.1f}s  {ok / wall:6.1f}/s",
                            file=sys.stderr,
                        )
                        if name == "order":
                            order_done += ok
                            rss.append((order_done, rss_mib(worker.pid)))
                if memory:
                    memory_seconds = time.perf_counter() - began
                if above_threshold:
                    print(f"approvals: {len(above_threshold)} round trips each", file=sys.stderr)
                    approval_times = await approval_round_trips(
                        driver, admin_dsn, app_dsn, above_threshold
                    )
                metrics = await scrape(f"http://{cfg['metrics_bind']}/metrics")
    finally:
        await env.shutdown()
    return Report(
        n,
        concurrency,
        rounds,
        driver.activities,
        kinds,
        rss,
        load_before,
        loadavg(),
        metrics,
        logs,
        lean_pool,
        shapes,
        approval_times,
        memory_seconds,
    )


def report(r: Report) -> str:
    k = r.kinds
    lines = [
        f"N={r.n} per kind in {r.rounds} rounds (kinds alternating), C={r.concurrency} in flight"
        + (" [experiment: --lean-pool]" if r.lean_pool else ""),
        f"load average before: {r.load_before}; after: {r.load_after}",
        f"OrderFulfill activities from its history ({len(r.activities)}): "
        + ", ".join(r.activities),
        *(f"history of one {k[name].label}: {shape}" for name, shape in r.shapes.items()),
        "",
        f"{'kind':32} {'done':>6} {'failed':>6} {'seconds':>8} {'wf/s':>7}",
    ]
    for kind in k.values():
        lines.append(
            f"{kind.label:32} {kind.completed:6} {len(kind.failed):6} {kind.seconds:8.1f} "
            f"{kind.rate:7.2f}"
        )
    order = k["order"]
    lines.append("")
    if "bare_calls" in k:
        bare, http, calls = k["bare"], k["bare_http"], k["bare_calls"]
        lines += [
            "throughput OrderFulfill / bare with the same provider calls: "
            f"{order.rate / calls.rate:.2f}x (B1 target >= 0.9)",
            f"throughput OrderFulfill / bare no-op ({len(r.activities)} activities): "
            f"{order.rate / bare.rate:.2f}x",
            f"throughput OrderFulfill / bare + HTTP ({len(r.activities)} activities): "
            f"{order.rate / http.rate:.2f}x",
            f"throughput bare + HTTP / bare no-op: {http.rate / bare.rate:.2f}x",
        ]
    lines += approval_lines(r.approvals)
    if r.memory_seconds is not None:
        (_, first), *_ = [x for x in r.rss if x[0] >= 1000] or [(0, r.rss[0][1])]
        lines.append(
            f"worker RSS after {r.rss[-1][0]} / after {min(1000, r.rss[-1][0])} OrderFulfill: "
            f"{r.rss[-1][1] / first:.2f}x (B6 target <= 1.1); took {r.memory_seconds:.0f} s"
        )
    lines += [
        "worker RSS (MiB) after N OrderFulfill: "
        + ", ".join(f"{done}: {mib:.0f}" for done, mib in r.rss),
        "worker kernel metrics: "
        + ", ".join(
            f"{name} {value:g}"
            for name, value in sorted(r.metrics.items())
            if not name.endswith("_count")
        ),
    ]
    parts = sorted({p for kind in k.values() for p in kind.cpu})
    lines += [
        "",
        "CPU ms per workflow, by process (user + system):",
        f"{'kind':32} " + " ".join(f"{p:>9}" for p in parts) + f" {'sum':>9}",
    ]
    for kind in k.values():
        per = {p: 1000 * kind.cpu.get(p, 0.0) / max(kind.completed, 1) for p in parts}
        lines.append(
            f"{kind.label:32} "
            + " ".join(f"{per[p]:9.1f}" for p in parts)
            + f" {sum(per.values()):9.1f}"
        )
    lines.append(f"logs: {r.logs}")
    for kind in k.values():
        if kind.failed:
            lines.append(f"{kind.name} failures (first 3): {kind.failed[:3]}")
    return "\n".join(lines)


def approval_lines(times: dict[str, list[float]]) -> list[str]:
    if not times.get("autobiz") or not times.get("bare"):
        return []
    import statistics

    ms = {name: [1000 * t for t in got] for name, got in times.items()}
    p50 = {name: statistics.median(got) for name, got in ms.items()}
    p90 = {name: sorted(got)[int(0.9 * (len(got) - 1))] for name, got in ms.items()}
    return [
        f"approval round trip p50 AutoBiz / bare update: {p50['autobiz'] / p50['bare']:.2f}x "
        "(B2 target <= 1.3)",
        f"  AutoBiz decide: p50 {p50['autobiz']:.1f} ms, p90 {p90['autobiz']:.1f} ms; "
        f"bare update: p50 {p50['bare']:.1f} ms, p90 {p90['bare']:.1f} ms "
        f"({len(ms['autobiz'])} each, one at a time)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="workflows of each kind")
    parser.add_argument("--concurrency", type=int, default=20, help="workflows in flight")
    parser.add_argument("--rounds", type=int, default=4, help="chunks per kind, alternating")
    parser.add_argument("--quick", action="store_true", help="N=200, 2 rounds: a smoke run")
    parser.add_argument(
        "--approvals",
        type=int,
        default=30,
        metavar="M",
        help="approval round trips timed against bare updates (B2); 0 skips them",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="B6: only OrderFulfill, --n of them (10 000 unless given) in chunks of 1 000",
    )
    parser.add_argument(
        "--lean-pool",
        action="store_true",
        help="experiment: the worker's pool without the liveness check on checkout",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="PREFIX",
        help="record the worker with py-spy in round 1 (PREFIX-<kind>.txt, collapsed stacks)",
    )
    parser.add_argument("--serve-sandbox", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox)
        return
    if args.serve_worker is not None:
        asyncio.run(serve_worker(json.loads(args.serve_worker)))
        return
    n, rounds = (200, 2) if args.quick else (args.n, args.rounds)
    approvals = args.approvals
    if args.memory:
        n = args.n if "--n" in sys.argv else 10_000
        rounds, approvals = max(1, n // 1000), 0
    figures = asyncio.run(
        bench(n, args.concurrency, rounds, args.py_spy, args.lean_pool, approvals, args.memory)
    )
    print(report(figures), flush=True)
    # Everything is done and printed, the services stopped. Leave without the
    # interpreter's shutdown: in about one run of four a native thread of the driver's
    # Temporal client released the GIL while Python finalized ("Fatal Python error:
    # PyGILState_Release", exit 134) after a complete report.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
