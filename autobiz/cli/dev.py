"""`autobiz dev up|status|down`: the embedded local stack."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from autobiz.cli.output import console, emit_json
from autobiz.devstack.services import ServiceStatus
from autobiz.devstack.stack import Stack
from autobiz.errors import ExitCode
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


CONFIG_OPT = typer.Option(
    None,
    "--config",
    help="The worker's BusinessConfig directory (default: the one the stack's worker runs "
    "on, until `dev down`; else AUTOBIZ_CONFIG_DIR); a different one restarts the worker.",
)


@app.command()
def up(json_out: bool = JSON_OPT, config: Path | None = CONFIG_OPT) -> None:
    """Start the stack (idempotent) and apply migrations; returns when all are healthy."""
    stack = Stack(get_settings(), config_dir=config)
    settings = stack.settings
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
    console.print(
        f"Temporal Web UI: [link]{settings.temporal.ui_url}[/link] "
        f"(decodes payloads through {stack.codec.endpoint})"
    )
    console.print(f"State lives in {settings.home_dir}; stop with `autobiz dev down`.")


@app.command()
def status(json_out: bool = JSON_OPT) -> None:
    """Show what runs where (addresses, pids, UI link); exit 4 when part of it is down."""
    settings = get_settings()
    statuses = Stack(settings).status()
    if json_out:
        emit_json({"home": str(settings.home_dir), "services": [asdict(s) for s in statuses]})
    else:
        console.print(_table(statuses))
        _token_line(statuses)
    if degraded(statuses):
        raise typer.Exit(ExitCode.UNAVAILABLE)


def degraded(statuses: list[ServiceStatus]) -> bool:
    """Some of the stack runs but not all of it, or a running process does not answer its
    health check. A stack that is wholly stopped (after `dev down`) is not a failure."""
    ours = [s for s in statuses if s.state != "external"]
    if not any(s.state in ("running", "unhealthy") for s in ours):
        return False
    return any(s.state not in ("running", "external") for s in statuses)


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
