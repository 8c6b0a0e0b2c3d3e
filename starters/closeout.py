"""Start a DailyCloseout run for one day, and keep each tenant's closeout schedule.

* :func:`start_closeout`: id ``closeout:{tenant}:{YYYY-MM-DD}`` (the tenant-local day;
  by default the last one that has ended). **Id reuse:** ``ALLOW_DUPLICATE`` with
  ``USE_EXISTING`` on conflict — a start while the day's run is going attaches to it; a
  start after it finished (completed or failed) runs the day again, which rewrites the
  same ``daily_metrics`` rows and report (the closeout is idempotent by day, so a re-run
  is how a corrected day is closed again).
* :func:`ensure_closeout_schedule`: one Temporal Schedule per tenant,
  ``closeout-schedule:{tenant}``, every day at ``closeout.at`` in ``closeout.timezone``
  (``ScheduleSpec.time_zone_name``: Temporal keeps it DST-correct), overlap SKIP, and a
  catch-up window of ``catchup_days`` days: after a server outage Temporal still fires
  the missed action once, and the run itself closes every missed day without a report.
  Idempotent (``starters.schedules.ensure``). Runs carry no policy: the worker loads it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    WorkflowHandle,
)

from kernel.config import BusinessConfig
from starters.schedules import (
    ScheduleOutcome,
    config_digest,
    ensure,
    start_action,
    start_run,
)
from workflows.closeout.models import CloseoutInput, CloseoutResult, last_ended_day
from workflows.ids import DAILY_CLOSEOUT, closeout_schedule_id, closeout_workflow_id

SCHEDULED_RUN_KEY = "scheduled"  # Temporal appends ``-{scheduled time}`` to the id


def closeout_input(
    config: BusinessConfig, *, principal: str, day: date | None = None
) -> CloseoutInput:
    """The run's settings, as the tenant's ``closeout`` section says."""
    c = config.closeout
    return CloseoutInput(
        tenant_id=config.tenant,
        day=day,
        timezone=c.timezone,
        catchup_days=c.catchup_days,
        principal=principal,
        max_orders=c.max_orders,
        link_ttl=c.link_ttl,
        tolerance_minor=c.tolerance_minor,
        acknowledge_roles=c.acknowledge_roles,
        acknowledge_timeout=c.acknowledge_timeout,
    )


def default_day(config: BusinessConfig, now: datetime | None = None) -> date:
    """The last tenant-local day that has ended."""
    return last_ended_day(now or datetime.now(UTC), config.closeout.timezone)


async def start_closeout(
    client: Client,
    config: BusinessConfig,
    *,
    task_queue: str,
    day: date | None = None,
    principal: str = "cli:operator",
) -> WorkflowHandle[Any, CloseoutResult]:
    day = day or default_day(config)
    return await start_run(
        client,
        DAILY_CLOSEOUT.type,
        closeout_input(config, principal=principal, day=day),
        workflow_id=closeout_workflow_id(config.tenant, day.isoformat()),
        task_queue=task_queue,
        result_type=CloseoutResult,
        tenant=config.tenant,
    )


def closeout_schedule(config: BusinessConfig, *, task_queue: str) -> Schedule:
    """The schedule as the config describes it; its note fingerprints that description."""
    c = config.closeout
    input = closeout_input(config, principal="schedule:daily_closeout")
    digest = config_digest(input, task_queue=task_queue, timezone=c.timezone, at=c.at)
    return Schedule(
        action=start_action(
            DAILY_CLOSEOUT.type,
            input,
            workflow_id=closeout_workflow_id(config.tenant, SCHEDULED_RUN_KEY),
            task_queue=task_queue,
            tenant=config.tenant,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(c.hour)],
                    minute=[ScheduleRange(c.minute)],
                    second=[ScheduleRange(0)],
                    comment=f"daily closeout at {c.at} {c.timezone}",
                )
            ],
            time_zone_name=c.timezone,
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(days=max(c.catchup_days, 1)),
        ),
        state=ScheduleState(note=f"autobiz daily closeout: {c.at} {c.timezone} [config {digest}]"),
    )


async def ensure_closeout_schedule(
    client: Client, config: BusinessConfig, *, task_queue: str
) -> ScheduleOutcome:
    """Create the tenant's schedule, or bring it in line with the config (idempotent)."""
    wanted = closeout_schedule(config, task_queue=task_queue)
    return await ensure(client, closeout_schedule_id(config.tenant), wanted)
