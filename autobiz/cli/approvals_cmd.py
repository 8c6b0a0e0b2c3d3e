"""`autobiz approvals list|approve|deny|sign|keys`: the HITL backlog and the decisions on it.

The backlog is the ``hitl_requests`` table read through ``Database.tenant`` (row-level
security: another tenant's requests are invisible, not merely filtered). A decision is the
workflow's ``decide`` update, signed with the operator's own approver key (``--as`` picks
the key file under ``$AUTOBIZ_HOME/keys/<tenant>/<approver>/``, or ``--key-file``), whose
validator (approver of this tenant, holding a role the rule names, request pending and not
expired, a proof by a registered, unrevoked key of that approver, fresh and not replayed)
refuses bad decisions before anything is written; a refusal is
``error[APPROVAL_REJECTED]`` with the validator's reason.

``keys create|rotate|revoke|list|refresh`` manage the tenant's approver key registry
(``autobiz.approver_keys``); registering and revoking use the database owner's
connection, and every change is signalled (``approver_keys_changed``) to the tenant's
running flows so a request already waiting sees it.

The update id is derived from (tenant, request, approver, verdict), so submitting the same
decision twice gives one outcome: Temporal answers a repeated update id with the first
result, and once the flow has moved on the recorded decision is reported again.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    business_config,
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
from autobiz.cli.output import (
    OUTPUT_OPT,
    OutputFormat,
    Rows,
    console,
    emit_json,
    output_format,
    show_rows,
)
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from autobiz.approver_keys import LocalKey

app = typer.Typer(help="Human approvals (HITL): list the backlog, approve or deny.")
keys_app = typer.Typer(help="Approver keys: create, rotate, revoke, list (signing decisions).")
app.add_typer(keys_app, name="keys")

REASON_MAX = 500
REQUEST_ARG = typer.Argument(..., help="Request id from `autobiz approvals list`.")
_COLUMNS = (
    "request_id, workflow_id, action, required_role, amount_minor, currency, status, "
    "escalation_level, requested_at, expires_at, decided_by, decided_at, reason, details"
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
        # A request that asks for a pick (`--choice`) or carries a draft (`--edit-file`).
        "options": list((row.get("details") or {}).get("options") or []),
        "draft": (row.get("details") or {}).get("draft"),
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
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """Approval requests of one tenant, across its workflows, soonest expiry first."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    views = run(_list(settings, tenant_id, include_closed=include_closed, limit=limit))
    fmt = output_format(output, json_out)
    pending = sum(1 for v in views if v["status"] == "pending")
    columns = ["request", "workflow", "action", "amount", "role", "age", "expires in", "esc"]
    if include_closed:
        columns += ["status", "decided by"]
    rows: list[list[str | Text]] = []
    for v in views:
        if v["status"] != "pending":
            expires: str | Text = "-"
        elif v["expired"]:
            expires = Text("expired", style="red")
        else:
            expires = format_seconds(v["expires_in_seconds"])
        cells = [
            v["request_id"],
            v["workflow_id"],
            v["action"],
            format_money(v["amount_minor"], v["currency"]),
            ", ".join(v["required_roles"]) or "*",
            format_seconds(v["age_seconds"]),
            expires,
            str(v["escalation_level"]),
        ]
        if include_closed:
            cells += [v["status"], v["decided_by"] or "-"]
        rows.append(cells)
    which = "approval requests" if include_closed else "pending approvals"
    show_rows(
        fmt,
        Rows(
            f"approvals for {tenant_id} ({pending} pending)",
            columns,
            rows,
            ids={"request", "workflow"},
            empty=f"no {which} for {tenant_id}",
        ),
        {"tenant_id": tenant_id, "approvals": views},
    )
    if fmt is OutputFormat.table and any(v["options"] or v["draft"] is not None for v in views):
        console.print(
            "some requests offer options or carry a draft: `autobiz approvals show <request>`",
            highlight=False,
        )


@app.command("show")
def show(
    request_id: str = REQUEST_ARG, tenant: str | None = TENANT_OPT, json_out: bool = JSON_OPT
) -> None:
    """One request whole: what it asks, its options and its draft (to edit and send back
    with `approvals approve --edit-file`)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def one() -> dict[str, Any] | None:
        async with database(settings) as db, db.tenant(tenant_id) as s:
            now = await s.fetch_val("SELECT now()")
        row = await _find(settings, tenant_id, request_id)
        return None if row is None else _view(row, now)

    view = run(one())
    if view is None:
        raise AutobizError(
            f"no approval request {request_id} for tenant {tenant_id}",
            code=ErrorCode.APPROVAL_NOT_FOUND,
            hint=f"see `autobiz approvals list --all --tenant {tenant_id}`",
        )
    if json_out:
        emit_json(view)
        return
    for key in ("request_id", "workflow_id", "action", "status", "expires_at", "decided_by"):
        console.print(f"{key}: {view[key] if view[key] is not None else '-'}", highlight=False)
    console.print(f"roles: {', '.join(view['required_roles']) or '*'}", highlight=False)
    if view["options"]:
        console.print(
            f"options (approve with --choice): {', '.join(view['options'])}", highlight=False
        )
    if view["draft"] is not None:
        console.print("draft (approve with --edit-file to send your version):", highlight=False)
        print(view["draft"])


async def _find(settings: Settings, tenant_id: str, request_id: str) -> dict[str, Any] | None:
    async with database(settings) as db, db.tenant(tenant_id) as s:
        return await s.fetch_one(
            f"SELECT {_COLUMNS} FROM hitl_requests WHERE tenant_id = %s AND request_id = %s",
            (tenant_id, request_id),
        )


@dataclass(frozen=True)
class _Verdict:
    """One approver's decision on one request, as given on the command line."""

    tenant_id: str
    request_id: str
    approver: str
    approve: bool
    reason: str | None
    key_file: Path | None
    choice: str | None = None
    edited_text: str | None = None

    @property
    def status(self) -> str:
        """The request's status once this decision is recorded."""
        return "approved" if self.approve else "denied"

    def recorded_in(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` (the request) already records this very decision."""
        return bool(row["status"] == self.status and row["decided_by"] == self.approver)


def _verdict(
    tenant: str | None,
    request_id: str,
    approver: str,
    approve: bool,
    reason: str | None,
    key_file: Path | None,
    choice: str | None = None,
    edit_file: Path | None = None,
) -> tuple[Settings, _Verdict]:
    """The settings and the decision the command was given, checked before any I/O."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _checked(approver, reason)
    edited = _edited_text(edit_file)
    from workflows.common.models import CHOICE_PATTERN

    if choice is not None and not re.fullmatch(CHOICE_PATTERN, choice):
        raise AutobizError(
            f"--choice {choice!r} is not an option name (lower case, digits, _)",
            code=ErrorCode.INPUT_INVALID,
            hint="`autobiz approvals show <request>` lists the request's options",
        )
    if not approve and (choice is not None or edited is not None):
        raise AutobizError(
            "--choice and --edit-file go with approve: a denial picks nothing",
            code=ErrorCode.INPUT_INVALID,
        )
    return settings, _Verdict(
        tenant_id, request_id, approver, approve, reason, key_file, choice, edited
    )


def _edited_text(path: Path | None) -> str | None:
    """The replacement draft from ``--edit-file`` (``-``: standard input), checked."""
    from workflows.common.models import DRAFT_MAX_CHARS

    if path is None:
        return None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AutobizError(
            f"cannot read the edited draft {path}: {exc}", code=ErrorCode.INPUT_INVALID
        ) from None
    if not text.strip() or len(text) > DRAFT_MAX_CHARS:
        raise AutobizError(
            f"the edited draft must be 1..{DRAFT_MAX_CHARS} characters and not blank",
            code=ErrorCode.INPUT_INVALID,
        )
    return text


async def _signed(settings: Settings, v: _Verdict) -> tuple[dict[str, Any], Any]:
    """The request row and the decision on it, signed with the approver's own key."""
    from starters.decisions import sign_decision

    row = await _find(settings, v.tenant_id, v.request_id)
    if row is None:
        raise AutobizError(
            f"no approval request {v.request_id} for tenant {v.tenant_id}",
            code=ErrorCode.APPROVAL_NOT_FOUND,
            hint=f"see `autobiz approvals list --tenant {v.tenant_id}`",
        )
    key = await _local_key(settings, v.tenant_id, v.approver, v.key_file)
    decision = sign_decision(
        key,
        tenant_id=v.tenant_id,
        workflow_id=str(row["workflow_id"]),
        request_id=v.request_id,
        approver=v.approver,
        approve=v.approve,
        reason=v.reason,
        choice=v.choice,
        edited_text=v.edited_text,
    )
    return row, decision


async def _local_key(
    settings: Settings, tenant_id: str, approver: str, key_file: Path | None
) -> LocalKey:
    """The approver's private key whose public half is registered and usable now."""
    from autobiz.approver_keys import keys_dir, list_keys, read_private_key, usable

    async with database(settings) as db:
        rows = [r for r in await list_keys(db, tenant_id, approver) if usable(r)]
    by_public = {r["public_key"]: r for r in rows}
    folder = keys_dir(settings.home_dir, tenant_id, approver)
    files = [key_file] if key_file is not None else sorted(folder.glob("*.pem"), reverse=True)
    for path in files:
        local = read_private_key(path)
        match = by_public.get(local.public_key)
        if match is not None:
            return read_private_key(path, match["key_id"])
    where = str(key_file) if key_file is not None else f"{folder}/"
    raise AutobizError(
        f"no usable approver key of {approver} for tenant {tenant_id} in {where}",
        code=ErrorCode.APPROVER_KEY_MISSING,
        hint=f"create and register one with `autobiz approvals keys create --as {approver} "
        f"--tenant {tenant_id}` (an admin act: it needs the database owner's credentials), "
        "or pass --key-file",
    )


async def _decide(settings: Settings, v: _Verdict) -> dict[str, Any]:
    row, decision = await _signed(settings, v)
    workflow_id = str(row["workflow_id"])
    uid = update_id(v.tenant_id, v.request_id, v.approver, v.approve)
    out: dict[str, Any] = {
        "request_id": v.request_id,
        "workflow_id": workflow_id,
        "tenant_id": v.tenant_id,
        "update_id": uid,
        "key_id": decision.proof.key_id,
    }
    result = await _send(settings, workflow_id, decision, uid)
    if isinstance(result, str):
        return await _refused(settings, out, v, refusal=result)
    # Temporal answers a repeated update id with the first outcome; the row says
    # whether that outcome was already on record before this call.
    return {**out, **result.model_dump(mode="json"), "duplicate": v.recorded_in(row)}


async def _send(settings: Settings, workflow_id: str, decision: Any, uid: str) -> Any:
    """The flow's answer to the decision, or (a ``str``) why it refused it."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    client = await temporal_client(settings)
    try:
        with temporal_errors(f"sending the decision to {workflow_id}"):
            return await within(
                _decide_fresh(client, workflow_id, decision, uid),
                f"sending the decision to {workflow_id}",
            )
    except WorkflowUpdateFailedError as exc:
        return failure_of(exc)[1]
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        return f"the flow {workflow_id} is no longer running ({exc.message})"


async def _refused(
    settings: Settings, out: dict[str, Any], v: _Verdict, *, refusal: str
) -> dict[str, Any]:
    """Refused. If this very decision is the one on record (a double submission after the
    flow moved on), report that outcome again; anything else is a rejection."""
    tenant_id = v.tenant_id
    now = await _find(settings, tenant_id, v.request_id)
    if now is not None and v.recorded_in(now):
        return {
            **out,
            "status": v.status,
            "decided_by": v.approver,
            "decided_at": iso(now["decided_at"]),
            "duplicate": True,
        }
    raise AutobizError(
        refusal,
        code=ErrorCode.APPROVAL_REJECTED,
        hint=f"see `autobiz approvals list --all --tenant {tenant_id}`, the approvers in "
        f"the tenant's BusinessConfig and `autobiz approvals keys list --tenant {tenant_id}`",
    )


# The flow's registry snapshot predates the key (registered or rotated after the request
# opened, or a run from before proofs): refresh it and try again, for this long.
_STALE = ("is not registered for tenant", "holds no approver key registry")
_STALE_RETRY = timedelta(seconds=15)


async def _decide_fresh(client: Any, workflow_id: str, decision: Any, uid: str) -> Any:
    """``decide``; a rejection because the run's key snapshot is stale (the key is
    registered, we just read it) makes the run re-read the registry, then it is retried.
    A rejected update leaves no trace, so retrying is safe."""
    import asyncio

    from temporalio.client import WorkflowUpdateFailedError

    from starters.flows import decide
    from workflows.common.handlers import ApprovalHandlers

    deadline = asyncio.get_running_loop().time() + _STALE_RETRY.total_seconds()
    signalled = False
    while True:
        try:
            return await decide(client, workflow_id, decision, update_id=uid)
        except WorkflowUpdateFailedError as exc:
            stale = any(s in failure_of(exc)[1] for s in _STALE)
            if not stale or asyncio.get_running_loop().time() > deadline:
                raise
        if not signalled:
            await client.get_workflow_handle(workflow_id).signal(
                ApprovalHandlers.approver_keys_changed
            )
            signalled = True
        await asyncio.sleep(0.25)


def _checked(approver: str, reason: str | None) -> None:
    if reason is not None and len(reason) > REASON_MAX:
        raise AutobizError(
            f"the reason is longer than {REASON_MAX} characters", code=ErrorCode.INPUT_INVALID
        )
    if not approver.strip():
        raise AutobizError("--as needs an approver id", code=ErrorCode.INPUT_INVALID)


def _decide_command(
    request_id: str,
    approver: str,
    reason: str | None,
    tenant: str | None,
    json_out: bool,
    key_file: Path | None,
    *,
    approve: bool,
    choice: str | None = None,
    edit_file: Path | None = None,
) -> None:
    settings, verdict = _verdict(
        tenant, request_id, approver, approve, reason, key_file, choice, edit_file
    )
    out = run(_decide(settings, verdict))
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


AS_OPT = typer.Option(
    ..., "--as", help="Your approver id in the tenant's BusinessConfig (selects your key)."
)
REASON_OPT = typer.Option(None, "--reason", help="Why (recorded with the decision).")
KEY_FILE_OPT = typer.Option(
    None,
    "--key-file",
    help="Your private key (PEM); default: the newest usable one under "
    "$AUTOBIZ_HOME/keys/<tenant>/<approver>/.",
)


CHOICE_OPT = typer.Option(
    None, "--choice", help="The option you pick, for a request that offers options."
)
EDIT_FILE_OPT = typer.Option(
    None,
    "--edit-file",
    help="Your edit of the request's draft (a file, or - for standard input): it is what "
    "the flow uses instead of the draft.",
)


@app.command("approve")
def approve(
    request_id: str = REQUEST_ARG,
    approver: str = AS_OPT,
    reason: str | None = REASON_OPT,
    choice: str | None = CHOICE_OPT,
    edit_file: Path | None = EDIT_FILE_OPT,
    tenant: str | None = TENANT_OPT,
    key_file: Path | None = KEY_FILE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Approve a pending request, signed with your key (the workflow checks the proof,
    who you are and your role); with --choice for a request that offers options, with
    --edit-file to send your version of its draft."""
    _decide_command(
        request_id,
        approver,
        reason,
        tenant,
        json_out,
        key_file,
        approve=True,
        choice=choice,
        edit_file=edit_file,
    )


@app.command("deny")
def deny(
    request_id: str = REQUEST_ARG,
    approver: str = AS_OPT,
    reason: str | None = REASON_OPT,
    tenant: str | None = TENANT_OPT,
    key_file: Path | None = KEY_FILE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Deny a pending request: the action does not happen and the flow records why."""
    _decide_command(request_id, approver, reason, tenant, json_out, key_file, approve=False)


@app.command()
def sign(
    request_id: str = REQUEST_ARG,
    approver: str = AS_OPT,
    deny_it: bool = typer.Option(False, "--deny", help="Sign a denial (default: approve)."),
    reason: str | None = REASON_OPT,
    choice: str | None = CHOICE_OPT,
    edit_file: Path | None = EDIT_FILE_OPT,
    tenant: str | None = TENANT_OPT,
    key_file: Path | None = KEY_FILE_OPT,
) -> None:
    """Print a signed decision as JSON, for `temporal workflow update execute --name
    decide --input …` (or the ``decide_signal`` signal). Valid for a few minutes."""
    settings, verdict = _verdict(
        tenant, request_id, approver, not deny_it, reason, key_file, choice, edit_file
    )
    _, decision = run(_signed(settings, verdict))
    print(decision.model_dump_json(exclude_none=True))


# --- keys -----------------------------------------------------------------------------


async def _notify(settings: Settings, tenant_id: str) -> list[str]:
    """Signal ``approver_keys_changed`` to the tenant's running approval-capable flows
    (not only those showing ApprovalPending: one opening a request right now read the
    registry before the change but may not be listed as pending yet)."""
    from workflows.common.handlers import ApprovalHandlers
    from workflows.ids import APPROVAL_FLOWS

    client = await temporal_client(settings)
    types = ", ".join(f"'{flow.type}'" for flow in APPROVAL_FLOWS)
    query = (
        f"TenantId = '{tenant_id}' AND ExecutionStatus = 'Running' AND WorkflowType IN ({types})"
    )
    notified: list[str] = []
    with temporal_errors("telling the running flows about the key change"):
        async for wf in client.list_workflows(query):
            handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
            await within(
                handle.signal(ApprovalHandlers.approver_keys_changed), f"signalling {wf.id}"
            )
            notified.append(wf.id)
    return notified


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _key_view(row: dict[str, Any]) -> dict[str, Any]:
    from autobiz.approver_keys import usable

    state = "revoked" if row["revoked_at"] else ("active" if usable(row) else "expired")
    return {
        "key_id": row["key_id"],
        "approver": row["approver_id"],
        "state": state,
        "public_key": row["public_key"],
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by"],
        "not_before": iso(row["not_before"]),
        "expires_at": iso(row["expires_at"]),
        "revoked_at": iso(row["revoked_at"]),
        "revoked_reason": row["revoked_reason"],
    }


async def _create(
    settings: Settings,
    tenant_id: str,
    approver: str,
    key_file: Path | None,
    expires_days: int | None,
    revoke_old: bool,
) -> dict[str, Any]:
    from autobiz.approver_keys import (
        generate_key,
        keys_dir,
        list_keys,
        register_key,
        revoke_key,
        usable,
        write_private_key,
    )

    roster = {a.id for a in business_config(settings, tenant_id).approvers}
    if approver not in roster:
        raise AutobizError(
            f"{approver} is not an approver of tenant {tenant_id}",
            code=ErrorCode.APPROVER_UNKNOWN,
            hint=f"approvers in its BusinessConfig: {', '.join(sorted(roster)) or 'none'}",
        )
    key = generate_key()
    path = key_file or keys_dir(settings.home_dir, tenant_id, approver) / f"{key.key_id}.pem"
    write_private_key(key, path)
    async with database(settings, admin=True) as db:
        old = [r for r in await list_keys(db, tenant_id, approver) if usable(r)]
        try:
            row = await register_key(
                db,
                tenant_id,
                approver,
                key.public_key,
                key_id=key.key_id,
                created_by=f"cli:{_who()}",
                expires_in=None if expires_days is None else timedelta(days=expires_days),
            )
        except BaseException:
            path.unlink(missing_ok=True)  # a key nobody registered is no use to anyone
            raise
        revoked = []
        if revoke_old:
            for r in old:
                await revoke_key(db, tenant_id, r["key_id"], reason=f"rotated to {key.key_id}")
                revoked.append(r["key_id"])
    notified = await _notify(settings, tenant_id)
    return {
        "tenant_id": tenant_id,
        **_key_view({**row, "now": row["created_at"]}),
        "key_file": str(path),
        "revoked": revoked,
        "notified": notified,
        "previous": [r["key_id"] for r in old if r["key_id"] not in revoked],
    }


def _created(out: dict[str, Any], json_out: bool, verb: str) -> None:
    if json_out:
        emit_json(out)
        return
    console.print(
        f"[green]{verb}[/] key {out['key_id']} for {out['approver']} ({out['tenant_id']}); "
        f"private key {out['key_file']} (mode 0600, keep it to yourself)",
        highlight=False,
    )
    if out["revoked"]:
        console.print(f"revoked {', '.join(out['revoked'])}", highlight=False)
    elif out["previous"]:
        console.print(f"still valid until revoked: {', '.join(out['previous'])}", highlight=False)
    console.print(
        f"{len(out['notified'])} running flow(s) told to re-read the registry", highlight=False
    )


EXPIRES_OPT = typer.Option(
    None, "--expires-days", min=1, max=3650, help="The key stops being valid after this."
)


@keys_app.command("create")
def keys_create(
    approver: str = typer.Option(..., "--as", help="The approver id the key is for."),
    tenant: str | None = TENANT_OPT,
    key_file: Path | None = typer.Option(
        None, "--key-file", help="Write the private key here instead of $AUTOBIZ_HOME/keys/."
    ),
    expires_days: int | None = EXPIRES_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Generate an Ed25519 key pair: the private key to a 0600 file, the public key into
    the tenant's registry (an admin act on the database owner's connection)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _checked(approver, None)
    out = run(_create(settings, tenant_id, approver, key_file, expires_days, False))
    _created(out, json_out, "created")


@keys_app.command("rotate")
def keys_rotate(
    approver: str = typer.Option(..., "--as", help="The approver whose key to rotate."),
    tenant: str | None = TENANT_OPT,
    key_file: Path | None = typer.Option(None, "--key-file", help="Where the new key goes."),
    revoke_old: bool = typer.Option(
        False,
        "--revoke-old",
        help="Revoke the approver's other keys now (default: they "
        "stay valid until revoked or expired).",
    ),
    expires_days: int | None = EXPIRES_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Register a new key for an approver; the old ones stay valid until revoked."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _checked(approver, None)
    out = run(_create(settings, tenant_id, approver, key_file, expires_days, revoke_old))
    _created(out, json_out, "rotated:")


async def _revoke(
    settings: Settings, tenant_id: str, key_id: str, reason: str | None
) -> dict[str, Any]:
    from autobiz.approver_keys import revoke_key

    async with database(settings, admin=True) as db:
        row = await revoke_key(db, tenant_id, key_id, reason=reason)
    if row is None:
        raise AutobizError(
            f"no approver key {key_id} for tenant {tenant_id}",
            code=ErrorCode.APPROVER_KEY_NOT_FOUND,
            hint=f"see `autobiz approvals keys list --tenant {tenant_id}`",
        )
    notified = await _notify(settings, tenant_id)
    return {
        "tenant_id": tenant_id,
        **_key_view({**row, "now": row["revoked_at"]}),
        "notified": notified,
    }


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="Key id from `autobiz approvals keys list`."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept on the key row)."),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Revoke a key: no decision signed with it is accepted any more, also by a request
    that is already waiting."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    out = run(_revoke(settings, tenant_id, key_id, reason))
    if json_out:
        emit_json(out)
        return
    console.print(
        f"[yellow]revoked[/] {key_id} of {out['approver']} ({tenant_id}) at "
        f"{out['revoked_at']}; {len(out['notified'])} running flow(s) told",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    approver: str | None = typer.Option(None, "--as", help="Only this approver's keys."),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """The tenant's approver keys: active, expired and revoked."""
    from autobiz.approver_keys import list_keys

    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def rows() -> list[dict[str, Any]]:
        async with database(settings) as db:
            return await list_keys(db, tenant_id, approver)

    views = [_key_view(r) for r in run(rows())]
    cells: list[list[str | Text]] = [
        [
            v["key_id"],
            v["approver"],
            v["state"],
            v["created_at"] or "-",
            v["expires_at"] or "-",
            v["revoked_at"] or "-",
        ]
        for v in views
    ]
    show_rows(
        output_format(output, json_out),
        Rows(
            f"approver keys for {tenant_id}",
            ["key", "approver", "state", "created", "expires", "revoked"],
            cells,
            ids={"key", "approver"},
            empty=f"no approver keys for {tenant_id}",
        ),
        {"tenant_id": tenant_id, "keys": views},
    )


@keys_app.command("refresh")
def keys_refresh(tenant: str | None = TENANT_OPT, json_out: bool = JSON_OPT) -> None:
    """Tell the tenant's running flows to re-read the registry (create/rotate/revoke do
    this themselves; use it after a change made another way, or if that step failed)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    notified = run(_notify(settings, tenant_id))
    if json_out:
        emit_json({"tenant_id": tenant_id, "notified": notified})
        return
    console.print(f"{len(notified)} running flow(s) told to re-read the registry", highlight=False)
