"""`autobiz health [ROLE]`: the container healthcheck (autobiz.health)."""

from __future__ import annotations

import typer

from autobiz.cli.output import console, emit_json
from autobiz.errors import UsageError
from autobiz.health import ROLES, probe
from autobiz.settings import get_settings


def health(
    role: str = typer.Argument(None, help="worker, ingress or codec-server; none: any of them"),
    timeout: float = typer.Option(3.0, help="Seconds to wait for the answer."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Exit 0 when the role's process in this container answers; SERVICE_UNHEALTHY if not."""
    if role is not None and role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint="one of: " + ", ".join(ROLES))
    result = probe(get_settings(), role, timeout=timeout)
    if json_out:
        emit_json({"role": result.role, "url": result.url, "status": result.detail})
        return
    console.print(f"{result.role} healthy: {result.url} answered {result.detail}")
