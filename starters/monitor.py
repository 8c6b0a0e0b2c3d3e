"""Start an InvariantMonitor run on demand, and keep each tenant's monitor schedule.

* :func:`start_monitor`: id ``monitor:{tenant}:{run key}`` (now, ``20250101T120000Z``,
  unless a key is given); a second start while the run is going attaches to it.
* :func:`ensure_monitor_schedule`: one Temporal Schedule per tenant,
  ``monitor-schedule:{tenant}``, every ``monitor.every`` (BusinessConfig), overlap SKIP,
  catch-up limited to one interval. Idempotent: created when missing, updated when the
  config changed, otherwise left alone. Runs carry no policy: the worker loads it.
"""

from __future__ import annotations

from datetime import UTC, datetime
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

from kernel.config import BusinessConfig
from starters.reconciliation import run_key
from starters.schedules import (
    ScheduleOutcome,
    config_digest,
    ensure,
    start_action,
    start_run,
)
from workflows.ids import INVARIANT_MONITOR, monitor_schedule_id, monitor_workflow_id
from workflows.monitor.models import MonitorInput, MonitorResult

SCHEDULED_RUN_KEY = "scheduled"  # Temporal appends ``-{scheduled time}`` to the id


def monitor_input(config: BusinessConfig, *, principal: str) -> MonitorInput:
    """The run's thresholds, as the tenant's ``monitor`` section says."""
    mc = config.monitor
    return MonitorInput(
        tenant_id=config.tenant,
        principal=principal,
        stuck_after=mc.stuck_after,
        stuck_after_by_state=dict(mc.stuck_after_by_state),
        terminal_states=mc.terminal_states,
        approval_grace=mc.approval_grace,
        max_findings=mc.max_findings,
    )


async def start_monitor(
    client: Client,
    config: BusinessConfig,
    *,
    task_queue: str,
    key: str | None = None,
    principal: str = "cli:operator",
) -> WorkflowHandle[Any, MonitorResult]:
    return await start_run(
        client,
        INVARIANT_MONITOR.type,
        monitor_input(config, principal=principal),
        workflow_id=monitor_workflow_id(config.tenant, key or run_key(datetime.now(UTC))),
        task_queue=task_queue,
        result_type=MonitorResult,
        tenant=config.tenant,
    )


def monitor_schedule(config: BusinessConfig, *, task_queue: str) -> Schedule:
    """The schedule as the config describes it; its note fingerprints that description."""
    every = config.monitor.every
    input = monitor_input(config, principal="schedule:invariant_monitor")
    digest = config_digest(input, task_queue=task_queue, every=every.total_seconds())
    return Schedule(
        action=start_action(
            INVARIANT_MONITOR.type,
            input,
            workflow_id=monitor_workflow_id(config.tenant, SCHEDULED_RUN_KEY),
            task_queue=task_queue,
            tenant=config.tenant,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
        state=ScheduleState(note=f"autobiz invariant monitor: every {every} [config {digest}]"),
    )


async def ensure_monitor_schedule(
    client: Client, config: BusinessConfig, *, task_queue: str
) -> ScheduleOutcome:
    """Create the tenant's schedule, or bring it in line with the config (idempotent)."""
    schedule_id = monitor_schedule_id(config.tenant)
    wanted = monitor_schedule(config, task_queue=task_queue)
    return await ensure(client, schedule_id, wanted)
