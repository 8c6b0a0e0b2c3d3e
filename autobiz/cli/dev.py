"""`autobiz dev up|status|down`: the embedded local stack."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from autobiz.cli.output import console, emit_json
from autobiz.devstack.services import ServiceStatus
from autobiz.devstack.stack import Stack
from autobiz.settings import get_settings

app = typer.Typer(help="Run the embedded local stack (Temporal dev server, PostgreSQL).")

JSON_OPT = typer.Option(False, "--json", help="Machine-readable output.")


def _table(statuses: list[ServiceStatus]) -> Table:
    table = Table(title="AutoBiz local stack")
    for col in ("service", "state", "pid", "address"):
        table.add_column(col, no_wrap=True)
    table.add_column("link / dsn", overflow="fold")
    for st in statuses:
        colour = {"running": "green", "external": "cyan"}.get(st.state, "red")
        table.add_row(
            st.name,
            f"[{colour}]{st.state}[/]",
            str(st.pid or "-"),
            st.address or "-",
            st.url or "-",
        )
    return table


@app.command()
def up(json_out: bool = JSON_OPT) -> None:
    """Start the stack (idempotent) and apply migrations; returns when all are healthy."""
    settings = get_settings()
    stack = Stack(settings)
    if json_out:
        statuses, report = stack.up()
    else:
        with console.status("starting the local stack...") as spinner:

            def progress(msg: str) -> None:
                spinner.update(f"{msg}...")
                console.print(f"[green]✓[/] {msg}")

            statuses, report = stack.up(progress)
    if json_out:
        emit_json(
            {
                "home": str(settings.home_dir),
                "services": [asdict(s) for s in statuses],
                "migrations_applied": report.applied,
            }
        )
        return
    if report.applied:
        console.print(f"[green]✓[/] migrations applied: {', '.join(report.applied)}")
    console.print(_table(statuses))
    _token_line(statuses)
    console.print(f"Temporal Web UI: [link]{settings.temporal.ui_url}[/link]")
    console.print(f"State lives in {settings.home_dir}; stop with `autobiz dev down`.")


@app.command()
def status(json_out: bool = JSON_OPT) -> None:
    """Show what runs where (addresses, pids, UI link)."""
    settings = get_settings()
    statuses = Stack(settings).status()
    if json_out:
        emit_json({"home": str(settings.home_dir), "services": [asdict(s) for s in statuses]})
        return
    console.print(_table(statuses))
    _token_line(statuses)


def _token_line(statuses: list[ServiceStatus]) -> None:
    """Where the sandbox's control API token is (its ``details``)."""
    for st in statuses:
        if token := st.details.get("control_token"):
            console.print(f"{st.name} control API token: {token}", highlight=False)


@app.command()
def down(json_out: bool = JSON_OPT) -> None:
    """Stop every process `dev up` started (by pid), and nothing else."""
    stopped = Stack(get_settings()).down()
    if json_out:
        emit_json({"stopped": stopped})
        return
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
