"""Start a Reconciliation run on demand, and keep each tenant's Reconciliation schedule.

* :func:`start_reconciliation`: id ``reconcile:{tenant}:{run key}`` (the window's end,
  ``20250101T120000Z``, unless a key is given). A second start while the run is going
  attaches to it (USE_EXISTING); a finished window may be run again (ALLOW_DUPLICATE) —
  drift rows are idempotent, so a re-run only confirms what is known.
* :func:`ensure_schedule`: one Temporal Schedule per tenant, ``reconcile-schedule:{tenant}``,
  every ``reconciliation.every`` over the ``reconciliation.window`` before each run
  (BusinessConfig), overlap SKIP, catch-up limited to one interval. Idempotent: created
  when missing, updated when the config changed, otherwise left alone. The schedule's
  runs carry no policy snapshot: the worker loads the tenant's current config.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowHandle,
)

from activities.config_activities import flow_context
from kernel.config import BusinessConfig
from starters.schedules import (
    ScheduleOutcome,
    config_digest,
    ensure,
    start_action,
    start_run,
)
from workflows.common.models import ApprovalTiming
from workflows.ids import RECONCILIATION, reconcile_schedule_id, reconciliation_workflow_id
from workflows.reconciliation.models import ReconciliationInput, ReconciliationResult

SCHEDULED_RUN_KEY = "scheduled"  # Temporal appends ``-{scheduled time}`` to the id


def run_key(window_end: datetime) -> str:
    return window_end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


async def start_reconciliation(
    client: Client,
    config: BusinessConfig,
    *,
    task_queue: str,
    window: timedelta | None = None,
    window_end: datetime | None = None,
    key: str | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
) -> WorkflowHandle[Any, ReconciliationResult]:
    """Reconcile ``[window_end - window, window_end]`` (defaults: the config's window, now)."""
    rc = config.reconciliation
    context = flow_context(config, RECONCILIATION.key, timing)
    end = window_end or datetime.now(UTC)
    input = ReconciliationInput(
        tenant_id=config.tenant,
        window_start=end - (window or rc.window),
        window_end=end,
        context=context,
        principal=principal,
        max_orders=rc.max_orders,
        acknowledge_roles=rc.acknowledge_roles,
        acknowledge_timeout=rc.acknowledge_timeout,
    )
    return await start_run(
        client,
        RECONCILIATION.type,
        input,
        workflow_id=reconciliation_workflow_id(config.tenant, key or run_key(end)),
        task_queue=task_queue,
        result_type=ReconciliationResult,
        tenant=config.tenant,
    )


def reconcile_schedule(config: BusinessConfig, *, task_queue: str) -> Schedule:
    """The schedule as the config describes it; its note fingerprints that description."""
    rc = config.reconciliation
    input = ReconciliationInput(
        tenant_id=config.tenant,
        window=rc.window,
        principal="schedule:reconciliation",
        max_orders=rc.max_orders,
        acknowledge_roles=rc.acknowledge_roles,
        acknowledge_timeout=rc.acknowledge_timeout,
    )
    digest = config_digest(input, task_queue=task_queue, every=rc.every.total_seconds())
    return Schedule(
        action=start_action(
            RECONCILIATION.type,
            input,
            workflow_id=reconciliation_workflow_id(config.tenant, SCHEDULED_RUN_KEY),
            task_queue=task_queue,
            tenant=config.tenant,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=rc.every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=rc.every),
        state=ScheduleState(
            note=f"autobiz reconcile schedule: every {rc.every}, window {rc.window} "
            f"[config {digest}]"
        ),
    )


async def ensure_schedule(
    client: Client, config: BusinessConfig, *, task_queue: str
) -> ScheduleOutcome:
    """Create the tenant's schedule, or bring it in line with the config (idempotent)."""
    schedule_id = reconcile_schedule_id(config.tenant)
    wanted = reconcile_schedule(config, task_queue=task_queue)
    return await ensure(client, schedule_id, wanted)
