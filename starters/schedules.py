"""What the scheduled flows (reconciliation, the invariant monitor, the daily closeout)
share: a run started by its id, the schedule's start action and its config digest, and
per-tenant Temporal Schedules kept in line with the config (created when missing,
replaced when the config's digest in the schedule's note changed, else left alone)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from autobiz.search_attributes import initial_attributes

ScheduleOutcome = Literal["created", "updated", "unchanged"]
R = TypeVar("R")


async def start_run(
    client: Client,
    workflow_type: str,
    input: BaseModel,
    *,
    workflow_id: str,
    task_queue: str,
    result_type: type[R],
    tenant: str,
) -> WorkflowHandle[Any, R]:
    """Start a run by hand: a start while the id's run is going attaches to it
    (``USE_EXISTING``), one after it closed runs again (``ALLOW_DUPLICATE``: these flows
    are idempotent by their id's key)."""
    return await client.start_workflow(
        workflow_type,
        input,
        id=workflow_id,
        task_queue=task_queue,
        result_type=result_type,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=initial_attributes(tenant),
    )


def start_action(
    workflow_type: str, input: BaseModel, *, workflow_id: str, task_queue: str, tenant: str
) -> ScheduleActionStartWorkflow:
    """The schedule's action: the flow under its scheduled-run id (Temporal appends the
    scheduled time) with the tenant's first search attributes."""
    return ScheduleActionStartWorkflow(
        workflow_type,
        input,
        id=workflow_id,
        task_queue=task_queue,
        typed_search_attributes=initial_attributes(tenant),
    )


def config_digest(input: BaseModel, *, task_queue: str, **spec: Any) -> str:
    """The fingerprint of what a schedule is made from (its spec, task queue and input),
    kept in its note: :func:`ensure` replaces a schedule whose note differs."""
    described = {**spec, "task_queue": task_queue, "input": input.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


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
