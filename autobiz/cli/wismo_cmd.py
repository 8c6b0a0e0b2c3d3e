"""`autobiz wismo list`: the tenant's recent WF05 WISMO runs — the email (its
Message-ID), the order it was matched to, where the run stands and how it ended
(answered, answered after review, a non-answer, denied, expired). Reviews themselves are
`autobiz approvals list|show|approve|deny` (docs/operations.md#wismo-review)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer
from temporalio.client import Client, WorkflowExecution, WorkflowQueryFailedError
from temporalio.service import RPCError

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    iso,
    run,
    temporal_client,
    temporal_errors,
    tenant_of,
)
from autobiz.cli.output import OUTPUT_OPT, OutputFormat, Rows, output_format, show_rows
from autobiz.settings import get_settings
from workflows.common.handlers import FlowHandlers
from workflows.common.models import FlowStatus
from workflows.ids import WISMO

app = typer.Typer(help="WF05 WISMO: customers' 'where is my order?' emails and their answers.")

LIMIT_OPT = typer.Option(20, "--limit", min=1, max=500, help="The newest N runs.")
# A closed run's status is answered by a worker replaying it: bounded, never a hang.
QUERY_TIMEOUT = timedelta(seconds=5)


async def _row(client: Client, execution: WorkflowExecution) -> dict[str, Any]:
    status = execution.status.name if execution.status is not None else "UNKNOWN"
    row: dict[str, Any] = {
        "workflow_id": execution.id,
        "started_at": iso(execution.start_time),
        "status": status,
        "state": None,
        "message_id": None,
        "order_name": None,
        "outcome": None,
        "review_reason": None,
    }
    try:
        live: FlowStatus = await client.get_workflow_handle(execution.id).query(
            FlowHandlers.status, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError):
        return row  # no worker to answer the query: Temporal's view only
    row["state"] = live.state
    for key in ("message_id", "order_name", "outcome", "review_reason"):
        row[key] = live.detail.get(key)
    return row


def _rows(rows: list[dict[str, Any]], empty: str) -> Rows:
    return Rows(
        "WISMO runs, newest first",
        ["started", "message", "order", "state", "outcome", "review", "workflow id"],
        [
            [
                str(r["started_at"] or "-"),
                str(r["message_id"] or "-"),
                str(r["order_name"] or "-"),
                str(r["state"] or r["status"]),
                str(r["outcome"] or "-"),
                str(r["review_reason"] or "-"),
                str(r["workflow_id"]),
            ]
            for r in rows
        ],
        ids={"message", "order", "workflow id"},
        empty=empty,
    )


@app.command("list")
def list_cmd(
    tenant: str | None = TENANT_OPT,
    limit: int = LIMIT_OPT,
    json_out: bool = JSON_OPT,
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """The tenant's newest WISMO runs: message, order, state and outcome."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def main() -> list[dict[str, Any]]:
        with temporal_errors("listing WISMO runs"):
            client = await temporal_client(settings)
            query = f'WorkflowType="{WISMO.type}" AND TenantId="{tenant_id}"'
            executions = [e async for e in client.list_workflows(query, limit=limit)]
            return [await _row(client, e) for e in executions]

    rows = run(main())
    show_rows(
        output_format(output, json_out),
        _rows(rows, f"no WISMO runs for {tenant_id}"),
        {"tenant_id": tenant_id, "runs": rows},
    )
