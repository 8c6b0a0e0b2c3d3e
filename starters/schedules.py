"""Per-tenant Temporal Schedules kept in line with the config (reconciliation, the
invariant monitor): created when missing, replaced when the config's digest in the
schedule's note changed, else left alone."""

from __future__ import annotations

from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

ScheduleOutcome = Literal["created", "updated", "unchanged"]


async def ensure(client: Client, schedule_id: str, wanted: Schedule) -> ScheduleOutcome:
    """Create the schedule, or bring it in line with ``wanted`` (idempotent)."""
    try:
        await client.create_schedule(schedule_id, wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    current = await handle.describe()
    if current.schedule.state.note == wanted.state.note:
        return "unchanged"

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=wanted)

    await handle.update(replace)
    return "updated"
