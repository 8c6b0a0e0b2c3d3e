"""`autobiz db migrate`."""

from __future__ import annotations

import typer

from autobiz.cli.output import console, emit_json
from autobiz.db.dsn import admin_dsn, describe
from autobiz.db.migrate import migrate as run_migrations
from autobiz.settings import get_settings

app = typer.Typer(help="Database schema.")


@app.command()
def migrate(json_out: bool = typer.Option(False, "--json")) -> None:
    """Apply pending migrations (idempotent; each file all-or-nothing)."""
    dsn = admin_dsn(get_settings())
    report = run_migrations(dsn)
    if json_out:
        emit_json({"applied": report.applied, "already_applied": report.already_applied})
        return
    where = describe(dsn)
    if report.applied:
        console.print(
            f"applied {len(report.applied)} migration(s) to {where}: " + ", ".join(report.applied)
        )
    else:
        console.print(f"{where} is up to date ({len(report.already_applied)} applied)")
