"""Starting a flow by its business key from the CLI, as the flow commands share it.

A second start for the same key attaches to the running workflow, a key whose last run
completed is refused (the flow's ``closed_code``), and a key whose last run failed or was
terminated starts its next run (``autobiz.business_keys``). :class:`FlowStart` holds how a
command words its flow; :func:`start`, :func:`started_line`, :func:`outcome`,
:func:`wait_for` and :func:`finish` are the steps every start command takes, in that order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from autobiz.cli.flow_runtime import dump, failure_of, temporal_errors
from autobiz.cli.output import console, emit_json
from autobiz.errors import AutobizError, ExitCode
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle

Starter = Callable[[], Awaitable["WorkflowHandle[Any, Any]"]]
# What a command prints once the flow it waited for has finished.
ResultLine = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class FlowStart:
    """How one start command words its flow."""

    kind: str  # "order flow", "refund", "cancellation": the started line, a failure
    closed_code: ErrorCode  # a completed key is refused with this code...
    closed_kind: str  # ...saying "{closed_kind} already ran"...
    closed_hint: str  # ...and this hint
    wait_hint: str  # while --wait waits, and on a failed flow


@contextmanager
def input_errors() -> Iterator[None]:
    """A model refusing the command's input (pydantic) is the user's to fix."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        raise AutobizError(f"{where}: {first.get('msg')}", code=ErrorCode.INPUT_INVALID) from None


async def describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The key's latest run, or None when there is none."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _closed(flow: FlowStart, desc: WorkflowExecutionDescription | None, workflow_id: str) -> str:
    status = desc.status.name if desc is not None and desc.status is not None else "CLOSED"
    return (
        f"{flow.closed_kind} already ran: workflow {workflow_id} is {status}, and a "
        "completed key never runs again"
    )


def _refused(message: str, flow: FlowStart) -> AutobizError:
    return AutobizError(message, code=flow.closed_code, hint=flow.closed_hint)


async def _runs_so_far(client: Client, workflow_id: str) -> int | None:
    """How many runs this key has had (visibility; None when it cannot say)."""
    from temporalio.service import RPCError

    escaped = workflow_id.replace("\\", "\\\\").replace('"', '\\"')
    try:
        return (await client.count_workflows(f'WorkflowId = "{escaped}"')).count
    except RPCError:
        return None


async def start(
    client: Client, workflow_id: str, starter: Starter, flow: FlowStart
) -> tuple[WorkflowHandle[Any, Any], bool]:
    """Start (or attach to) one flow; return the handle and whether this call started it.
    The look before the start only words the refusal; the id-reuse policy enforces it
    (a completed key is refused; a failed or terminated one starts its next run)."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.exceptions import WorkflowAlreadyStartedError

    with temporal_errors(f"starting {workflow_id}"):
        before = await describe(client, workflow_id)
        if before is not None and before.status == WorkflowExecutionStatus.COMPLETED:
            raise _refused(_closed(flow, before, before.id), flow)
        try:
            with input_errors():
                handle = await starter()
        except WorkflowAlreadyStartedError as exc:  # completed (or since our look)
            desc = await describe(client, exc.workflow_id)
            raise _refused(_closed(flow, desc, exc.workflow_id), flow) from None
    # The server says whether this start created the run (False: the id-conflict policy
    # attached us to the running one).
    response = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(response, "started", before is None))
    return handle, started


async def _result(handle: WorkflowHandle[Any, Any], what: str, hint: str, *, quiet: bool) -> Any:
    """Wait for the flow's result (a spinner for people); a failed flow is ``FLOW_FAILED``."""
    from temporalio.client import WorkflowFailureError

    with temporal_errors(f"waiting for {handle.id}"):
        try:
            if quiet:
                return await handle.result()
            with console.status(f"waiting for {handle.id} ({hint})"):
                return await handle.result()
        except WorkflowFailureError as exc:
            kind, message = failure_of(exc)
            raise AutobizError(
                f"{what} {handle.id} failed: {kind}: {message}",
                code=ErrorCode.FLOW_FAILED,
                hint=hint,
            ) from None


async def previous_run(client: Client, workflow_id: str) -> dict[str, Any] | None:
    """The key's last run when it ended without completing (failed, terminated,
    cancelled, timed out): what a new start would follow. None: no run, or it is
    running or completed."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    desc = await describe(client, workflow_id)
    if desc is None or desc.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    ):
        return None
    previous: dict[str, Any] = {
        "run_id": desc.run_id,
        "status": desc.status.name if desc.status is not None else "CLOSED",
        "failure": None,
        "runs": await _runs_so_far(client, workflow_id),
    }
    try:
        await client.get_workflow_handle(workflow_id, run_id=desc.run_id).result(follow_runs=False)
    except WorkflowFailureError as exc:
        kind, message = failure_of(exc)
        previous["failure"] = {"type": kind, "message": message}
    return previous


def run_number(previous: dict[str, Any] | None) -> int | None:
    """The number of the run a start made: 1 for a new key, else the runs so far + 1."""
    if previous is None:
        return 1
    return previous["runs"] + 1 if previous["runs"] else None


def _rerun_line(kind: str, workflow_id: str, previous: dict[str, Any]) -> str:
    number = run_number(previous)
    which = f"run {number} of " if number else "a new run of "
    failure = previous["failure"]
    why = f": {failure['type']}" if failure else ""
    return (
        f"[green]✓[/] started {which}{kind} [bold]{workflow_id}[/] (the previous run "
        f"{previous['run_id']} ended {previous['status']}{why}; what it completed is "
        "replayed, not redone)"
    )


def started_line(
    kind: str, workflow_id: str, started: bool, previous: dict[str, Any] | None = None
) -> str:
    """Started (a new key, or the next run after ``previous``), or attached."""
    if started and previous is not None:
        return _rerun_line(kind, workflow_id, previous)
    if started:
        return f"[green]✓[/] started {kind} [bold]{workflow_id}[/]"
    return (
        f"[yellow]↺[/] attached to the running {kind} [bold]{workflow_id}[/] "
        "(its own input stands; this call's options are not applied)"
    )


def outcome(
    workflow_id: str,
    handle: WorkflowHandle[Any, Any],
    tenant_id: str,
    order_id: str,
    started: bool,
    **fields: Any,
) -> dict[str, Any]:
    """A start command's JSON: the run, the command's own ``fields``, started or attached."""
    return {
        "workflow_id": workflow_id,
        "run_id": handle.result_run_id,
        "tenant_id": tenant_id,
        "order_id": order_id,
        **fields,
        "started": started,
        "attached": not started,
    }


async def wait_for(
    out: dict[str, Any],
    handle: WorkflowHandle[Any, Any],
    flow: FlowStart,
    *,
    wait: bool,
    json_out: bool,
) -> dict[str, Any]:
    """With ``--wait``, the flow's result as ``out["result"]``; ``out`` either way."""
    if wait:
        out["result"] = dump(await _result(handle, flow.kind, flow.wait_hint, quiet=json_out))
    return out


def finish(
    out: dict[str, Any],
    *,
    json_out: bool,
    wait: bool,
    result_line: ResultLine,
    follow: str,
    refused: frozenset[str] = frozenset(),
) -> None:
    """The command's last words: its JSON, the result (``--wait``) or how to follow it.
    A waited-for flow that ended in one of the ``refused`` states (an approver said no,
    the provider's truth refused it) exits ``REFUSED``, so a script never reads a denied
    refund as done."""
    if json_out:
        emit_json(out)
    else:
        console.print(result_line(out["result"]) if wait else follow, highlight=False)
    if wait and out["result"].get("state") in refused:
        raise typer.Exit(int(ExitCode.REFUSED))
