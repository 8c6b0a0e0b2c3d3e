"""`autobiz approvals list|approve|deny`: the HITL backlog and the decisions on it.

The backlog is the ``hitl_requests`` table read through ``Database.tenant`` (row-level
security: another tenant's requests are invisible, not merely filtered). A decision is the
workflow's ``decide`` update, whose validator (approver of this tenant, holding a role the
rule names, request pending and not expired) refuses bad decisions before anything is
written; a refusal is ``error[APPROVAL_REJECTED]`` with the validator's reason.

The update id is derived from (tenant, request, approver, verdict), so submitting the same
decision twice gives one outcome: Temporal answers a repeated update id with the first
result, and once the flow has moved on the recorded decision is reported again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    database,
    failure_of,
    format_money,
    format_seconds,
    iso,
    run,
    temporal_client,
    temporal_errors,
    tenant_of,
    within,
)
from autobiz.cli.output import console, emit_json
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings

app = typer.Typer(help="Human approvals (HITL): list the backlog, approve or deny.")

REASON_MAX = 500
_COLUMNS = (
    "request_id, workflow_id, action, required_role, amount_minor, currency, status, "
    "escalation_level, requested_at, expires_at, decided_by, decided_at, reason"
)


def update_id(tenant_id: str, request_id: str, approver: str, approve: bool) -> str:
    """The same decision always gets the same update id (one outcome for a double submit)."""
    verdict = "approve" if approve else "deny"
    digest = hashlib.sha256(f"{tenant_id}\n{request_id}\n{approver}\n{verdict}".encode())
    return f"decide-{verdict}-{digest.hexdigest()[:32]}"


def _view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    expires_in = int((row["expires_at"] - now).total_seconds())
    return {
        "request_id": row["request_id"],
        "workflow_id": row["workflow_id"],
        "action": row["action"],
        "required_roles": [r for r in row["required_role"].split(",") if r],
        "amount_minor": row["amount_minor"],
        "currency": row["currency"],
        "status": row["status"],
        "escalation_level": row["escalation_level"],
        "requested_at": iso(row["requested_at"]),
        "expires_at": iso(row["expires_at"]),
        "age_seconds": max(int((now - row["requested_at"]).total_seconds()), 0),
        "expires_in_seconds": expires_in,
        "expired": row["status"] == "expired" or (row["status"] == "pending" and expires_in <= 0),
        "decided_by": row["decided_by"],
        "decided_at": iso(row["decided_at"]),
        "reason": row["reason"],
    }


async def _list(
    settings: Settings, tenant_id: str, *, include_closed: bool, limit: int
) -> list[dict[str, Any]]:
    where = "" if include_closed else "AND status = 'pending' "
    async with database(settings) as db, db.tenant(tenant_id) as s:
        now = await s.fetch_val("SELECT now()")
        rows = await s.fetch_all(
            f"SELECT {_COLUMNS} FROM hitl_requests WHERE tenant_id = %s {where}"
            "ORDER BY expires_at, request_id LIMIT %s",
            (tenant_id, limit),
        )
    return [_view(row, now) for row in rows]


@app.command("list")
def list_(
    tenant: str | None = TENANT_OPT,
    include_closed: bool = typer.Option(
        False, "--all", help="Also approved, denied and expired requests."
    ),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000, help="At most this many."),
    json_out: bool = JSON_OPT,
) -> None:
    """Approval requests of one tenant, across its workflows, soonest expiry first."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    views = run(_list(settings, tenant_id, include_closed=include_closed, limit=limit))
    if json_out:
        emit_json({"tenant_id": tenant_id, "approvals": views})
        return
    if not views:
        which = "approval requests" if include_closed else "pending approvals"
        console.print(f"no {which} for {tenant_id}", highlight=False)
        return
    pending = sum(1 for v in views if v["status"] == "pending")
    table = Table(title=f"approvals for {tenant_id} ({pending} pending)", title_justify="left")
    for col in ("request", "workflow", "action", "amount", "role", "age", "expires in", "esc"):
        table.add_column(col, overflow="fold")
    if include_closed:
        table.add_column("status")
        table.add_column("decided by")
    for v in views:
        if v["status"] != "pending":
            expires = "-"
        elif v["expired"]:
            expires = "[red]expired[/]"
        else:
            expires = format_seconds(v["expires_in_seconds"])
        cells = [
            v["request_id"], v["workflow_id"], v["action"],
            format_money(v["amount_minor"], v["currency"]),
            ", ".join(v["required_roles"]) or "*", format_seconds(v["age_seconds"]),
            expires, str(v["escalation_level"]),
        ]  # fmt: skip
        if include_closed:
            cells += [v["status"], v["decided_by"] or "-"]
        table.add_row(*cells)
    console.print(table)


async def _find(settings: Settings, tenant_id: str, request_id: str) -> dict[str, Any] | None:
    async with database(settings) as db, db.tenant(tenant_id) as s:
        return await s.fetch_one(
            f"SELECT {_COLUMNS} FROM hitl_requests WHERE tenant_id = %s AND request_id = %s",
            (tenant_id, request_id),
        )


async def _decide(
    settings: Settings,
    tenant_id: str,
    request_id: str,
    approver: str,
    approve: bool,
    reason: str | None,
) -> dict[str, Any]:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from starters.flows import decide
    from workflows.models import Decision

    row = await _find(settings, tenant_id, request_id)
    if row is None:
        raise AutobizError(
            f"no approval request {request_id} for tenant {tenant_id}",
            code="APPROVAL_NOT_FOUND",
            hint=f"see `autobiz approvals list --tenant {tenant_id}`",
        )
    workflow_id = str(row["workflow_id"])
    verdict = "approved" if approve else "denied"
    uid = update_id(tenant_id, request_id, approver, approve)
    decision = Decision(
        tenant_id=tenant_id, approver=approver, approve=approve, request_id=request_id,
        reason=reason,
    )  # fmt: skip
    out: dict[str, Any] = {
        "request_id": request_id, "workflow_id": workflow_id, "tenant_id": tenant_id,
        "update_id": uid,
    }  # fmt: skip
    client = await temporal_client(settings)
    refusal: str
    try:
        with temporal_errors(f"sending the decision to {workflow_id}"):
            result = await within(
                decide(client, workflow_id, decision, update_id=uid),
                f"sending the decision to {workflow_id}",
            )
        # Temporal answers a repeated update id with the first outcome; the row says
        # whether that outcome was already on record before this call.
        recorded = row["status"] == verdict and row["decided_by"] == approver
        return {**out, **result.model_dump(mode="json"), "duplicate": recorded}
    except WorkflowUpdateFailedError as exc:
        refusal = failure_of(exc)[1]
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        refusal = f"the flow {workflow_id} is no longer running ({exc.message})"
    # Refused. If this very decision is the one on record (a double submission after the
    # flow moved on), report that outcome again; anything else is a rejection.
    now = await _find(settings, tenant_id, request_id)
    if now is not None and now["status"] == verdict and now["decided_by"] == approver:
        return {
            **out, "status": verdict, "decided_by": approver,
            "decided_at": iso(now["decided_at"]), "duplicate": True,
        }  # fmt: skip
    raise AutobizError(
        refusal,
        code="APPROVAL_REJECTED",
        hint=f"see `autobiz approvals list --all --tenant {tenant_id}` and the approvers in "
        f"the tenant's BusinessConfig",
    )


def _decide_command(
    request_id: str, approver: str, reason: str | None, tenant: str | None, json_out: bool,
    *, approve: bool,
) -> None:  # fmt: skip
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    if reason is not None and len(reason) > REASON_MAX:
        raise AutobizError(f"the reason is longer than {REASON_MAX} characters",
                           code="INPUT_INVALID")  # fmt: skip
    if not approver.strip():
        raise AutobizError("--as needs an approver id", code="INPUT_INVALID")
    out = run(_decide(settings, tenant_id, request_id, approver, approve, reason))
    if json_out:
        emit_json(out)
        return
    again = " (already recorded: same outcome)" if out["duplicate"] else ""
    colour = "green" if out["status"] == "approved" else "yellow"
    console.print(
        f"[{colour}]{out['status']}[/] {request_id} by {approver}{again}; "
        f"workflow {out['workflow_id']}",
        highlight=False,
    )


AS_OPT = typer.Option(..., "--as", help="Your approver id in the tenant's BusinessConfig.")
REASON_OPT = typer.Option(None, "--reason", help="Why (recorded with the decision).")


@app.command()
def approve(
    request_id: str = typer.Argument(..., help="Request id from `autobiz approvals list`."),
    approver: str = AS_OPT,
    reason: str | None = REASON_OPT,
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Approve a pending request (the workflow validates who you are and your role)."""
    _decide_command(request_id, approver, reason, tenant, json_out, approve=True)


@app.command()
def deny(
    request_id: str = typer.Argument(..., help="Request id from `autobiz approvals list`."),
    approver: str = AS_OPT,
    reason: str | None = REASON_OPT,
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Deny a pending request: the action does not happen and the flow records why."""
    _decide_command(request_id, approver, reason, tenant, json_out, approve=False)
