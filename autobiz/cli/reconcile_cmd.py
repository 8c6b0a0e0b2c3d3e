"""`autobiz reconcile run|list|schedule`: compare our records with the providers.

* ``run``: start a Reconciliation over the window before now, wait, print the drift it
  saw (financial drift waits for approval in its own workflow: `autobiz approvals list`).
* ``list``: the tenant's drift rows still open or waiting for approval (``--all``: every
  row), from the database through RLS.
* ``schedule``: create or update each tenant's Reconciliation schedule (idempotent).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    business_config,
    database,
    dump,
    enabled,
    enabled_config,
    failure_of,
    format_money,
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
    output_format,
    show_rows,
)
from autobiz.errors import AutobizError
from autobiz.settings import get_settings
from kernel.codes import ErrorCode
from kernel.policy import parse_duration

if TYPE_CHECKING:
    from workflows.reconciliation.models import DriftRow, ReconciliationResult

app = typer.Typer(help="Reconciliation: receipts and projections against provider truth.")

OPEN_STATUSES = ("open", "pending_approval")


def _window(text: str | None) -> timedelta | None:
    if text is None:
        return None
    value = parse_duration(text)
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise AutobizError(
            f"window {text!r} is not a duration",
            code=ErrorCode.WINDOW_INVALID,
            hint="e.g. --window 24h, 90m, 7d",
        )
    return value


def _money(row: DriftRow) -> str:
    data = row.actual if "amount_minor" in row.actual else row.expected
    amount = data.get("amount_minor", data.get("amount_received_minor"))
    return format_money(amount, data.get("currency")) if isinstance(amount, int) else "-"


def _rows(rows: list[DriftRow], title: str, empty: str = "") -> Rows:
    return Rows(
        title,
        ["id", "kind", "order", "entity", "fin.", "amount", "status", "action", "seen"],
        [
            [
                str(r.drift_id),
                r.kind,
                r.order_id or "-",
                r.entity_ref,
                "yes" if r.financial else "no",
                _money(r),
                r.status,
                r.action,
                str(r.seen_count),
            ]
            for r in rows
        ],
        ids={"id", "order", "entity"},
        empty=empty,
    )


def _print_result(result: ReconciliationResult) -> None:
    console.print(
        f"{result.workflow_id}: window {result.window_start.isoformat()} .. "
        f"{result.window_end.isoformat()}; checked {result.orders_checked} order(s), "
        f"{result.payments_checked} payment(s), {result.refunds_seen} refund(s) in the window"
        + (" [truncated: raise reconciliation.max_orders]" if result.truncated else ""),
        highlight=False,
    )
    if not result.drifts:
        console.print("no drift", highlight=False)
        return
    show_rows(OutputFormat.table, _rows(list(result.drifts), "drift"), None)
    for drift_id, workflow_id in sorted(result.repairs.items()):
        console.print(f"drift {drift_id}: approval pending in {workflow_id}", highlight=False)


@app.command("run")
def run_cmd(
    tenant: str | None = TENANT_OPT,
    window: str | None = typer.Option(None, "--window", help="How far back (default: config)."),
    task_queue: str | None = typer.Option(None, "--task-queue", help="Default: settings."),
    json_out: bool = JSON_OPT,
) -> None:
    """Reconcile now and wait for the result (drift table; financial drift → approvals)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    config = enabled_config(
        settings,
        tenant_id,
        "reconciliation",
        hint="add a `workflows.reconciliation.reconciliation` section",
    )
    length = _window(window)

    async def main() -> ReconciliationResult:
        from temporalio.client import WorkflowFailureError

        from starters.reconciliation import start_reconciliation

        client = await temporal_client(settings)
        with temporal_errors("starting the reconciliation"):
            handle = await start_reconciliation(
                client,
                config,
                task_queue=task_queue or settings.temporal.task_queue,
                window=length,
            )
            try:
                return await handle.result()
            except WorkflowFailureError as exc:
                code, message = failure_of(exc)
                raise AutobizError(
                    f"reconciliation {handle.id} failed: {message}", code=code
                ) from None

    result = run(main())
    if json_out:
        emit_json(dump(result))
        return
    _print_result(result)


@app.command("list")
def list_cmd(
    tenant: str | None = TENANT_OPT,
    all_rows: bool = typer.Option(False, "--all", help="Every row, resolved ones included."),
    json_out: bool = JSON_OPT,
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """Drift rows still open or waiting for an approval (newest first)."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)

    async def main() -> list[DriftRow]:
        from activities.reconciliation_activities import fetch_drift_rows

        async with database(settings) as db:
            return await fetch_drift_rows(
                db, tenant_id, statuses=None if all_rows else OPEN_STATUSES
            )

    rows = run(main())
    empty = f"no {'' if all_rows else 'open '}drift for {tenant_id}"
    show_rows(
        output_format(output, json_out),
        _rows(rows, f"drift of {tenant_id}", empty),
        [dump(r) for r in rows],
    )


@app.command("schedule")
def schedule_cmd(
    tenant: str | None = typer.Option(
        None, "--tenant", help="One tenant (default: every tenant in AUTOBIZ_CONFIG_DIR)."
    ),
    task_queue: str | None = typer.Option(None, "--task-queue", help="Default: settings."),
    json_out: bool = JSON_OPT,
) -> None:
    """Create or update the Reconciliation schedule of each tenant (idempotent)."""
    from autobiz.business_config import load_configs

    settings = get_settings()
    if tenant is not None:
        configs = [business_config(settings, tenant_of(settings, tenant))]
    else:
        configs = [c for _, c in sorted(load_configs(settings.config_dir).items())]
    queue = task_queue or settings.temporal.task_queue

    async def main() -> list[dict[str, Any]]:
        from starters.reconciliation import ensure_schedule
        from workflows.ids import reconcile_schedule_id

        client = await temporal_client(settings)
        done = []
        with temporal_errors("creating the schedule"):
            for config in configs:
                if not enabled(config, "reconciliation"):
                    continue
                outcome = await ensure_schedule(client, config, task_queue=queue)
                done.append(
                    {
                        "tenant": config.tenant,
                        "schedule_id": reconcile_schedule_id(config.tenant),
                        "outcome": outcome,
                        "every": str(config.reconciliation.every),
                        "window": str(config.reconciliation.window),
                        "task_queue": queue,
                    }
                )
        return done

    done = run(main())
    if json_out:
        emit_json(done)
        return
    for d in done:
        console.print(
            f"{d['schedule_id']}: {d['outcome']} (every {d['every']}, window {d['window']}, "
            f"queue {d['task_queue']})",
            highlight=False,
        )
    if not done:
        console.print("no tenant enables the reconciliation workflow", highlight=False)
