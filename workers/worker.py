"""The AutoBiz worker: every order-to-cash workflow and every tool activity on one queue.

Start-up refuses an invalid BusinessConfig (any file in ``settings.config_dir`` that does
not compile) and unsafe provider settings before it polls anything. The database pool
and the per-tenant provider clients (:class:`TenantClients`: each tenant's clients are
built from that tenant's credentials on first use) are injected into the activity
classes. SIGTERM /
SIGINT shut the worker down gracefully: polling stops, in-flight activities get
``settings.worker.graceful_shutdown_seconds`` to finish, then the clients close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor, Worker

from activities.approval_activities import ApprovalActivities
from activities.care_activities import CareActivities
from activities.closeout_activities import CloseoutActivities
from activities.config_activities import ConfigActivities
from activities.exception_activities import ExceptionActivities
from activities.kernel_activities import KernelActivities
from activities.llm_activities import LlmActivities
from activities.monitor_activities import MonitorActivities
from activities.order_state_activities import OrderStateActivities
from activities.printful_activities import PrintfulActivities
from activities.reconciliation_activities import (
    ReconciliationActivities,
)
from activities.risk_activities import RiskActivities
from activities.sendgrid_activities import SendGridActivities
from activities.shopify_activities import ShopifyActivities
from activities.stripe_activities import StripeActivities
from autobiz import __version__
from autobiz.breakers.guard import breaker_interceptors
from autobiz.business_config import load_configs
from autobiz.closeout_links import ReportLinks
from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.ledger.riding_projection import RidingProjection
from autobiz.providers.hygiene import ensure_settings_safe
from autobiz.providers.tenant_clients import TenantClients
from autobiz.ratelimits.limiter import SharedRateLimiter, rate_limiter
from autobiz.secrets import CredentialStore, credential_store
from autobiz.settings import Settings
from autobiz.temporal_client import connect
from kernel.config import BusinessConfig
from kernel.metrics import HISTOGRAM_BUCKETS, publish_build_info
from starters.closeout import ensure_closeout_schedule
from starters.monitor import ensure_monitor_schedule
from starters.reconciliation import ensure_schedule
from workers.bytecode import write_bytecode
from workers.ledger_gauges import LedgerGauges
from workflows.care.wismo import Wismo
from workflows.closeout.daily_closeout import DailyCloseout
from workflows.monitor.invariant_monitor import InvariantMonitor
from workflows.orders.fulfillment_exception import FulfillmentException
from workflows.orders.order_cancellation import OrderCancellation
from workflows.orders.order_fulfill import OrderFulfill
from workflows.payments.payment_failure import PaymentFailure
from workflows.payments.refund import Refund
from workflows.reconciliation.reconcile_drift import ReconcileDrift
from workflows.reconciliation.reconciliation import Reconciliation

log = logging.getLogger(__name__)

WORKFLOWS: tuple[type, ...] = (
    OrderFulfill,
    Refund,
    PaymentFailure,
    OrderCancellation,
    Reconciliation,
    ReconcileDrift,
    InvariantMonitor,
    DailyCloseout,
    FulfillmentException,
    Wismo,
)


def tenant_clients(
    settings: Settings,
    store: CredentialStore | None = None,
    limiter: SharedRateLimiter | None = None,
) -> TenantClients:
    """The worker's provider clients: built per tenant from that tenant's credentials
    (``autobiz.secrets``), never from one global set; with ``limiter``, every request
    within its account's rate limit, shared by all workers (``autobiz.ratelimits``)."""
    ensure_settings_safe(settings)
    return TenantClients(settings, store or credential_store(settings), limiter)


def activities(
    clients: TenantClients,
    db: Database,
    configs: dict[str, BusinessConfig],
    *,
    high_risk_countries: Sequence[str] = (),
    links: ReportLinks | None = None,
) -> list[Callable[..., Any]]:
    stripe = StripeActivities(clients, db)
    shopify = ShopifyActivities(clients, db)
    printful = PrintfulActivities(clients, db)
    email = SendGridActivities(clients, db)
    risk = RiskActivities(high_risk_countries=high_risk_countries)
    approvals = ApprovalActivities(db)
    return [
        stripe.capture_payment,
        stripe.cancel_payment,
        stripe.create_refund,
        stripe.get_payment_intent,
        shopify.get_order,
        shopify.search_orders,
        shopify.create_fulfillment,
        shopify.refund_create,
        shopify.cancel_order,
        printful.create_order,
        printful.confirm_order,
        printful.cancel_order,
        printful.get_order,
        printful.update_order,
        email.send_email,
        LlmActivities(clients).complete,
        risk.assess,
        approvals.open_request,
        approvals.note,
        approvals.close_request,
        approvals.write_order_state,
        OrderStateActivities(db).read_order_state,
        ConfigActivities(configs).load_flow_context,
        ExceptionActivities(configs).exception_settings,
        CareActivities(configs).wismo_settings,
        *KernelActivities(db).all(),
        *reconcile_activities(clients, db),
        *monitor_activities(db, configs),
        *closeout_activities(clients, db, links),
    ]


def reconcile_activities(clients: TenantClients, db: Database) -> list[Callable[..., Any]]:
    """Reconciliation's plumbing (scope, drift rows) and its Stripe refund listing."""
    rows = ReconciliationActivities(db)
    return [
        rows.load_scope,
        rows.record,
        rows.resolve,
        StripeActivities(clients, db).list_refunds,
    ]


def closeout_activities(
    clients: TenantClients, db: Database, links: ReportLinks | None
) -> list[Callable[..., Any]]:
    """The DailyCloseout's plumbing (plan, ledger, rows, link) and its provider reads."""
    closeout = CloseoutActivities(db, links or ReportLinks.from_settings(Settings()))
    return [
        closeout.plan,
        closeout.ledger,
        closeout.write,
        closeout.link,
        StripeActivities(clients, db).list_balance_transactions,
        PrintfulActivities(clients, db).get_order_costs,
    ]


def monitor_activities(
    db: Database, configs: dict[str, BusinessConfig]
) -> list[Callable[..., Any]]:
    """The InvariantMonitor's reads (one per check group) and its incident rows."""
    monitor = MonitorActivities(db, configs)
    return [
        monitor.read_ledger,
        monitor.read_runs,
        monitor.read_tenancy,
        monitor.read_flows,
        monitor.record,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    clients: TenantClients,
    db: Database,
    configs: dict[str, BusinessConfig],
    *,
    task_queue: str | None = None,
) -> Worker:
    cfg = settings.worker
    write_bytecode(WORKFLOWS)  # the sandbox imports them once per run
    return Worker(
        client,
        task_queue=task_queue or settings.temporal.task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(
            clients,
            db,
            configs,
            high_risk_countries=cfg.high_risk_countries,
            links=ReportLinks.from_settings(settings),
        ),
        max_concurrent_activities=cfg.max_concurrent_activities,
        max_concurrent_workflow_tasks=cfg.max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=cfg.graceful_shutdown_seconds),
        interceptors=worker_interceptors(client, settings, db),
    )


def worker_interceptors(client: Client, settings: Settings, db: Database) -> list[Interceptor]:
    """Outermost first: the projection row a call carries is written before anything else
    (autobiz.ledger.riding_projection), then the circuit breakers per provider account,
    shared through PostgreSQL (autobiz.breakers)."""
    return [
        RidingProjection(db),
        *breaker_interceptors(settings.breaker, db, runtime_meter(client)),
    ]


def runtime_meter(client: Client) -> MetricMeter:
    """The meter of the client's runtime (the worker's Prometheus endpoint, if any)."""
    return (client.service_client.config.runtime or Runtime.default()).metric_meter


@asynccontextmanager
async def worker_resources(
    settings: Settings, configs: dict[str, BusinessConfig]
) -> AsyncIterator[tuple[TenantClients, Database]]:
    async with AsyncExitStack() as stack:
        db = Database(
            app_dsn(settings),
            None,
            min_size=settings.postgres.pool_min_size,
            max_size=settings.postgres.pool_max_size,
        )
        await stack.enter_async_context(db)
        clients = tenant_clients(
            settings, credential_store(settings, db), rate_limiter(settings.rate_limit, db)
        )
        stack.push_async_callback(clients.aclose)
        yield clients, db


async def ensure_schedules(
    client: Client, configs: dict[str, BusinessConfig], task_queue: str
) -> dict[str, str]:
    """Each tenant with Reconciliation enabled gets its schedule, as its config says."""
    outcomes: dict[str, str] = {}
    for tenant, config in sorted(configs.items()):
        wf = config.workflows.get("reconciliation")
        if wf is not None and wf.enabled:
            outcomes[tenant] = await ensure_schedule(client, config, task_queue=task_queue)
            log.info("reconciliation schedule for %s: %s", tenant, outcomes[tenant])
        monitor = config.workflows.get("invariant_monitor")
        if monitor is not None and monitor.enabled:
            made = await ensure_monitor_schedule(client, config, task_queue=task_queue)
            log.info("invariant monitor schedule for %s: %s", tenant, made)
        closeout = config.workflows.get("daily_closeout")
        if closeout is not None and closeout.enabled:
            made = await ensure_closeout_schedule(client, config, task_queue=task_queue)
            log.info("daily closeout schedule for %s: %s", tenant, made)
    return outcomes


def metrics_runtime(settings: Settings) -> Runtime | None:
    """The worker's runtime: the SDK's metrics and ours (``kernel.metrics``) on one
    Prometheus endpoint, by the Prometheus conventions: counters end in ``_total``,
    durations are seconds and end in ``_seconds`` (``docs/metrics.md``)."""
    bind = settings.worker.metrics_bind
    if bind is None:
        return None
    prometheus = PrometheusConfig(
        bind_address=bind,
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides=HISTOGRAM_BUCKETS,
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


async def run_worker(
    settings: Settings,
    *,
    task_queue: str | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); then shut down gracefully."""
    configs = load_configs(settings.config_dir)  # before anything connects
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
            pass
    runtime = metrics_runtime(settings)
    client = await connect(settings, runtime=runtime)
    if settings.worker.ensure_schedules:
        await ensure_schedules(client, configs, task_queue or settings.temporal.task_queue)
    async with worker_resources(settings, configs) as (clients, db):
        worker = build_worker(client, settings, clients, db, configs, task_queue=task_queue)
        runner = asyncio.create_task(worker.run())
        gauges = None
        if runtime is not None:
            publish_build_info(runtime.metric_meter, __version__)
            refresher = LedgerGauges(runtime.metric_meter, db, configs)
            gauges = asyncio.create_task(refresher.run(settings.worker.metrics_refresh_seconds))
        log.info(
            "worker polling %s for tenants %s",
            task_queue or settings.temporal.task_queue,
            ", ".join(sorted(configs)),
        )
        if on_ready is not None:
            on_ready()
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if gauges is not None:
            gauges.cancel()
        if runner in done:
            stopper.cancel()
            runner.result()  # the worker died: surface why
            return
        log.info("shutting down: finishing in-flight tasks")
        await worker.shutdown()
        await runner
