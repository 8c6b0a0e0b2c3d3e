"""`autobiz db migrate`."""

from __future__ import annotations

import typer

from autobiz.business_config import load_configs
from autobiz.cli.output import console, emit_json
from autobiz.db.dsn import admin_dsn, describe
from autobiz.db.migrate import migrate as run_migrations
from autobiz.db.tenants import sync_tenants as _sync
from autobiz.settings import get_settings

app = typer.Typer(help="Database schema.")


@app.command()
def migrate(
    json_out: bool = typer.Option(False, "--json"),
    sync_tenants: bool = typer.Option(
        False,
        "--sync-tenants",
        help="Then create the tenants of the BusinessConfigs in AUTOBIZ_CONFIG_DIR.",
    ),
) -> None:
    """Apply pending migrations (idempotent; each file all-or-nothing)."""
    settings = get_settings()
    dsn = admin_dsn(settings)
    # Configs first: one that does not compile stops the job before the schema changes.
    configs = load_configs(settings.config_dir) if sync_tenants else {}
    report = run_migrations(dsn)
    created = _sync(dsn, configs.values()) if sync_tenants else []
    if json_out:
        doc: dict[str, object] = {
            "applied": report.applied,
            "already_applied": report.already_applied,
        }
        if sync_tenants:
            doc["tenants"] = sorted(configs)
            doc["tenants_created"] = created
        emit_json(doc)
        return
    where = describe(dsn)
    if report.applied:
        console.print(
            f"applied {len(report.applied)} migration(s) to {where}: " + ", ".join(report.applied)
        )
    else:
        console.print(f"{where} is up to date ({len(report.already_applied)} applied)")
    if sync_tenants:
        new = f" ({', '.join(created)} new)" if created else ""
        console.print("tenants: " + ", ".join(sorted(configs)) + new)
