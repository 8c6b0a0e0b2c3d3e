"""`autobiz temporal setup`: what a self-hosted Temporal needs before the first worker."""

from __future__ import annotations

import asyncio

import typer

from autobiz.cli.output import console, emit_json
from autobiz.settings import get_settings

app = typer.Typer(help="The Temporal namespace AutoBiz runs on.")


@app.command()
def setup(
    wait: float = typer.Option(
        60.0, help="Seconds to keep retrying while Temporal is not reachable yet."
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Register the custom search attributes (TenantId, OrderId, FlowState,
    ApprovalPending) on the namespace; idempotent, run it at every deploy."""
    from autobiz.temporal_setup import setup as run_setup

    report = asyncio.run(run_setup(get_settings(), wait))
    if json_out:
        emit_json(
            {
                "namespace": report.namespace,
                "created": report.created,
                "already_present": report.already_present,
            }
        )
        return
    if report.created:
        also = f" ({len(report.already_present)} already present)" if report.already_present else ""
        console.print(f"namespace {report.namespace}: registered {', '.join(report.created)}{also}")
    else:
        console.print(f"namespace {report.namespace}: search attributes already registered")
