"""`autobiz closeout run|report`: the DailyCloseout (WF07) by hand, and what it wrote.

* ``run [--date YYYY-MM-DD] [--wait]``: starts the day's run (``starters.closeout``; id
  ``closeout:{tenant}:{day}``, by default the last tenant-local day that has ended). A
  day already closed runs again (id reuse ALLOW_DUPLICATE): the same rows and report are
  rewritten from provider truth; a start while the day's run is going attaches to it.
  ``--wait``: the day's totals, the report's sha256 and link, the drift raised; a failed
  run exits 1 (``FLOW_FAILED`` or the run's own code).
* ``report [--from] [--to]``: the tenant's ``daily_metrics`` rows and its reports (each
  with a fresh signed link), through the application role (RLS: its own rows only);
  ``--csv`` prints the rows as CSV. ``--all-tenants``: every tenant's rows, only through
  the named admin path (``Database.admin``, the owner's connection) with ``--reason``;
  each use writes an ``audit_log`` row (actor, range, reason, use id) in every tenant it
  read. Errors: ``WINDOW_INVALID`` (a bad date or range, exit 2),
  ``ADMIN_REASON_REQUIRED`` (exit 2), ``ADMIN_PATH_DISABLED`` (no owner DSN, exit 3).
"""

from __future__ import annotations

import csv
import getpass
import io
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import typer

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    business_config,
    database,
    dump,
    enabled_config,
    failure_of,
    run,
    temporal_client,
    temporal_errors,
    tenant_of,
)
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
from autobiz.errors import AutobizError
from autobiz.settings import get_settings
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from workflows.closeout.models import CloseoutResult

app = typer.Typer(help="Daily closeout: the day's metrics, drift and CSV report (WF07).")
REPORT_DAYS = 7


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise AutobizError(
            f"{option} {text!r} is not a date",
            code=ErrorCode.WINDOW_INVALID,
            hint="use YYYY-MM-DD (the tenant's local day)",
        ) from None


def _range(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    last = last or (first + timedelta(days=REPORT_DAYS - 1) if first else today)
    first = first or last - timedelta(days=REPORT_DAYS - 1)
    if first > last:
        raise AutobizError(
            f"--from {first} is after --to {last}",
            code=ErrorCode.WINDOW_INVALID,
            hint="give --from on or before --to",
        )
    return first, last


def _print_result(result: CloseoutResult) -> None:
    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, emoji=False)

    say(f"closeout {result.workflow_id}: {result.day} closed (write #{result.runs})")
    if result.window_start and result.window_end:
        say(f"  window {result.window_start.isoformat()} .. {result.window_end.isoformat()}")
    for t in result.totals:
        say(
            f"  {t.currency}: {t.orders} orders, captured {t.gross_captured_minor}, refunded "
            f"{t.refunded_minor}, fees {t.stripe_fees_minor}, net {t.net_minor}, fulfilment "
            f"{t.fulfillment_costs_minor}, margin {t.margin_minor} (minor units)"
        )
    if not result.totals:
        say("  no sales")
    say(f"  report sha256 {result.csv_sha256}")
    if result.report_url:
        say(f"  report {result.report_url}")
    for drift_id, workflow_id in sorted(result.repairs.items()):
        say(f"  drift {drift_id}: approval pending in {workflow_id}")
    if result.drifts and not result.repairs:
        say(f"  drift rows seen again: {', '.join(map(str, result.drifts))}")


@app.command("run")
def run_cmd(
    day_text: str | None = typer.Option(
        None, "--date", help="The tenant-local day (default: the last one that ended)."
    ),
    tenant: str | None = TENANT_OPT,
    wait: bool = typer.Option(False, "--wait", help="Wait for the run and show its result."),
    task_queue: str | None = typer.Option(None, "--task-queue", help="Default: settings."),
    json_out: bool = JSON_OPT,
) -> None:
    """Close one day now (again, if it was closed: idempotent)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    config = enabled_config(
        settings, tenant_id, "daily_closeout", hint="add a `workflows.daily_closeout` section"
    )
    day = _day(day_text, "--date")

    async def main() -> tuple[str, CloseoutResult | None]:
        from temporalio.client import WorkflowFailureError

        from starters.closeout import start_closeout

        client = await temporal_client(settings)
        with temporal_errors("starting the closeout"):
            handle = await start_closeout(
                client, config, task_queue=task_queue or settings.temporal.task_queue, day=day
            )
            if not wait:
                return handle.id, None
            try:
                return handle.id, await handle.result()
            except WorkflowFailureError as exc:
                code, message = failure_of(exc)
                if code not in ErrorCode.__members__:
                    code = ErrorCode.FLOW_FAILED
                raise AutobizError(f"closeout {handle.id} failed: {message}", code=code) from None

    workflow_id, result = run(main())
    if json_out:
        emit_json(dump(result) if result is not None else {"workflow_id": workflow_id})
        return
    if result is None:
        console.print(f"closeout {workflow_id} started", highlight=False)
        console.print(
            f"  follow it: temporal workflow query --workflow-id {workflow_id} --type status",
            highlight=False,
            markup=False,
        )
        return
    _print_result(result)


def _metric_rows_csv(rows: list[dict[str, Any]]) -> str:
    from activities.closeout_activities import metric_value

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["tenant_id", "day", "metric", "currency", "value"])
    for r in rows:
        w.writerow(
            [r["tenant_id"], r["day"], r["metric"], r["currency"] or "", metric_value(r["value"])]
        )
    return out.getvalue()


@app.command("report")
def report_cmd(
    from_text: str | None = typer.Option(None, "--from", help="First day (default: 7 days)."),
    to_text: str | None = typer.Option(None, "--to", help="Last day (default: today)."),
    tenant: str | None = TENANT_OPT,
    all_tenants: bool = typer.Option(
        False, "--all-tenants", help="Every tenant: the audited admin path (needs --reason)."
    ),
    by: str | None = typer.Option(None, "--by", help="Who reads (default: cli:<os user>)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (--all-tenants)."),
    json_out: bool = JSON_OPT,
    csv_out: bool = typer.Option(False, "--csv", help="The metrics rows as CSV."),
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """The daily metrics (and, for one tenant, its reports with a fresh link)."""
    settings = get_settings()
    first_given, last_given = _day(from_text, "--from"), _day(to_text, "--to")
    actor = by or f"cli:{getpass.getuser()}"
    if all_tenants and not (reason and reason.strip()):
        raise AutobizError(
            "--all-tenants reads every tenant's figures: say why",
            code=ErrorCode.ADMIN_REASON_REQUIRED,
            hint='add --reason "…" (it goes into every tenant\'s audit_log)',
        )

    async def everyone(first: date, last: date) -> tuple[str, list[dict[str, Any]]]:
        from activities.closeout_activities import admin_metrics

        async with database(settings, admin=True) as db:
            assert reason is not None
            return await admin_metrics(db, actor=actor, first=first, last=last, reason=reason)

    async def own(
        tenant_id: str, first: date, last: date
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from activities.closeout_activities import fetch_metrics, fetch_reports

        async with database(settings) as db:
            return (
                await fetch_metrics(db, tenant_id, first, last),
                await fetch_reports(db, tenant_id, first, last),
            )

    if all_tenants:
        first, last = _range(first_given, last_given, date.today())
        use_id, rows = run(everyone(first, last))
        reports: list[dict[str, Any]] = []
        scope = f"all tenants (admin path, audit use {use_id})"
    else:
        tenant_id = tenant_of(settings, tenant)
        config = business_config(settings, tenant_id)
        from starters.closeout import default_day

        today = default_day(config) + timedelta(days=1)
        first, last = _range(first_given, last_given, today)
        rows, reports = run(own(tenant_id, first, last))
        scope = tenant_id
        reports = [_with_link(settings, r) for r in reports]
    _show(rows, reports, scope, first, last, json_out=json_out, csv_out=csv_out, output=output)


def _with_link(settings: Any, report: dict[str, Any]) -> dict[str, Any]:
    from autobiz.closeout_links import ReportLinks

    url, expires_at = ReportLinks.from_settings(settings).url(
        report["tenant_id"], report["day"], timedelta(days=1)
    )
    return {**report, "link": url, "link_expires_at": expires_at}


def _show(
    rows: list[dict[str, Any]],
    reports: list[dict[str, Any]],
    scope: str,
    first: date,
    last: date,
    *,
    json_out: bool,
    csv_out: bool,
    output: OutputFormat | None,
) -> None:
    from activities.closeout_activities import metric_value

    if csv_out:
        sys.stdout.write(_metric_rows_csv(rows))
        return
    fmt = output_format(output, json_out)
    title = f"daily metrics of {scope}, {first} .. {last}"
    show_rows(
        fmt,
        Rows(
            title,
            ["tenant", "day", "metric", "currency", "value"],
            [
                [
                    r["tenant_id"],
                    str(r["day"]),
                    r["metric"],
                    r["currency"] or "",
                    metric_value(r["value"]),
                ]
                for r in rows
            ],
            ids={"tenant"},
            empty=f"no {title}",
        ),
        {
            "scope": scope,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "metrics": [{**r, "value": metric_value(r["value"])} for r in rows],
            "reports": reports,
        },
    )
    if fmt is OutputFormat.json:
        return
    # The report lines are not rows: in a pipe they go to stderr, stdout stays the rows.
    out = console if fmt is OutputFormat.table else err_console
    for rep in reports:
        out.print(
            f"report {rep['day']}: sha256 {rep['csv_sha256']}, written {rep['runs']}x, "
            f"{rep['drift_count']} drift; {rep['link']}",
            highlight=False,
            markup=False,
            emoji=False,
        )
