"""`autobiz incidents list|ack|resolve`: the invariant violations the InvariantMonitor
found (``incidents``, migration 0008), through the application role (RLS: a tenant sees
and moves only its own).

* ``list``: open and acknowledged incidents, most recently seen first (``--all``: resolved
  ones too; ``--kind INV-05``: one invariant);
* ``ack ID``: open → acknowledged (someone is on it);
* ``resolve ID``: open | acknowledged → resolved, with a ``--note`` saying what was done.

Who moved it and when is on the row and in ``audit_log``. Errors: ``INCIDENT_NOT_FOUND``
(no such incident for this tenant), ``INCIDENT_TRANSITION_INVALID`` (e.g. ack a resolved
one), both exit 2.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from autobiz.cli.flow_runtime import JSON_OPT, TENANT_OPT, database, dump, run, tenant_of
from autobiz.cli.output import (
    OUTPUT_OPT,
    OutputFormat,
    Rows,
    console,
    emit_json,
    err_console,
    output_format,
    show_rows,
)
from autobiz.settings import get_settings

if TYPE_CHECKING:
    from workflows.monitor.models import IncidentRow, IncidentStatus

app = typer.Typer(help="Incidents: invariant violations found by the InvariantMonitor.")
LIVE_STATUSES = ("open", "acknowledged")
BY_OPT = typer.Option(None, "--by", help="Who does it (default: cli:<os user>).")
NOTE_OPT = typer.Option(None, "--note", help="What was found or done.")


def _actor(given: str | None) -> str:
    return given or f"cli:{getpass.getuser()}"


def _rows(rows: list[IncidentRow], title: str, empty: str) -> Rows:
    return Rows(
        title,
        ["id", "kind", "check", "entity", "status", "seen", "last seen"],
        [
            [
                str(r.incident_id),
                r.kind,
                r.check_name,
                Text(r.entity_ref),  # as it is: "order:a:paid" is no emoji code
                r.status,
                str(r.occurrences),
                r.last_seen.isoformat(timespec="seconds"),
            ]
            for r in rows
        ],
        ids={"id", "entity"},
        empty=empty,
    )


def _print_row(row: IncidentRow) -> None:
    by = row.resolved_by if row.status == "resolved" else row.acknowledged_by
    console.print(
        f"incident {row.incident_id} ({row.kind} {row.check_name}, {row.entity_ref}): "
        f"{row.status}" + (f" by {by}" if by else ""),
        highlight=False,
        markup=False,
        emoji=False,
    )


@app.command("list")
def list_cmd(
    tenant: str | None = TENANT_OPT,
    all_rows: bool = typer.Option(False, "--all", help="Resolved incidents too."),
    kind: str | None = typer.Option(None, "--kind", help="One invariant, e.g. INV-05."),
    json_out: bool = JSON_OPT,
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """Incidents still open or acknowledged, most recently seen first (--json: diagnoses)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def main() -> list[IncidentRow]:
        from activities.monitor_activities import fetch_incidents

        async with database(settings) as db:
            statuses = None if all_rows else LIVE_STATUSES
            return await fetch_incidents(db, tenant_id, statuses=statuses, kind=kind)

    rows = run(main())
    fmt = output_format(output, json_out)
    empty = f"no {'' if all_rows else 'open '}incidents for {tenant_id}"
    show_rows(fmt, _rows(rows, f"incidents of {tenant_id}", empty), [dump(r) for r in rows])
    if fmt is OutputFormat.json:
        return
    # What to do next is not a row: in a pipe it goes to stderr, stdout stays the rows.
    out = console if fmt is OutputFormat.table else err_console
    for r in rows:
        action = r.diagnosis.get("recommended_action")
        if r.status != "resolved" and action:
            line = f"  {r.incident_id}: {r.summary} -> {action}"
            out.print(line, highlight=False, markup=False, emoji=False)


def _move(
    incident_id: int,
    status: IncidentStatus,
    tenant: str | None,
    by: str | None,
    note: str | None,
    json_out: bool,
) -> None:
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def main() -> IncidentRow:
        from activities.monitor_activities import move_incident

        async with database(settings) as db:
            return await move_incident(
                db, tenant_id, incident_id, status, actor=_actor(by), note=note
            )

    row = run(main())
    if json_out:
        emit_json(dump(row))
        return
    _print_row(row)


@app.command("ack")
def ack_cmd(
    incident_id: int = typer.Argument(..., help="The incident's id (`autobiz incidents list`)."),
    tenant: str | None = TENANT_OPT,
    by: str | None = BY_OPT,
    note: str | None = NOTE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Acknowledge an open incident: someone is on it (the monitor keeps counting it)."""
    _move(incident_id, "acknowledged", tenant, by, note, json_out)


@app.command("resolve")
def resolve_cmd(
    incident_id: int = typer.Argument(..., help="The incident's id (`autobiz incidents list`)."),
    tenant: str | None = TENANT_OPT,
    by: str | None = BY_OPT,
    note: str | None = NOTE_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Resolve an incident; if the monitor finds the violation again, it opens a new one."""
    _move(incident_id, "resolved", tenant, by, note, json_out)
