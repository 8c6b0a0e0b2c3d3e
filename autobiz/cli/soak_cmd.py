"""`autobiz soak`: rounds of the business day on the local stack, judged by the providers.

Brings up the embedded stack on the demo's config (as ``autobiz demo`` does), drives at
least ``--events`` events through every flow (``autobiz.soak``), optionally under chaos,
and reports: events, outcomes expected against observed per flow, what was lost or done
twice (checked against the sandbox's provider state and the ledger), invariant
violations, and latency p50/p99 per flow. Exit 1 (``SOAK_FAILED``) when anything was
lost, duplicated, broke an invariant or ended other than expected, or fewer events than
asked for got in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import typer
from temporalio.runtime import Runtime, TelemetryConfig

from autobiz.cli.output import console, emit_json
from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.devstack.sandbox_package import require_sandbox
from autobiz.devstack.stack import Stack
from autobiz.errors import AutobizError, UsageError
from autobiz.settings import get_settings
from autobiz.soak.runner import Soak, SoakOptions, SoakReport
from autobiz.temporal_client import connect
from kernel.codes import ErrorCode
from kernel.policy import parse_duration


class SoakFailed(AutobizError):
    code = ErrorCode.SOAK_FAILED
    exit_code = 1


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    value = parse_duration(text)
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise UsageError(f"--duration {text!r} is not a duration", hint="e.g. 90s, 10m, 1h")
    return value.total_seconds()


def soak(
    events: int = typer.Option(300, "--events", min=1, help="Drive at least this many events."),
    duration: str | None = typer.Option(
        None, "--duration", help="Keep going at least this long too (e.g. 10m)."
    ),
    chaos: bool = typer.Option(
        False, "--chaos", help="Kill and restart parts of the stack while it runs."
    ),
    parallel: int = typer.Option(1, "--parallel", min=1, max=8, help="Rounds in flight."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable report."),
    down: bool = typer.Option(False, "--down", help="Stop the stack when the soak is over."),
) -> None:
    """Soak the local stack: ≥ N events through every flow, nothing lost or done twice."""
    options = SoakOptions(
        events=events, duration=_duration(duration), chaos=chaos, parallel=parallel
    )
    require_sandbox("`autobiz soak`")
    base = get_settings()
    stack = Stack(base, config_dir=base.demo_config_dir)
    say = _quiet if json_out else _say
    say(f"bringing up the local stack (demo config: {stack.settings.config_dir})")
    stack.up(say)
    try:
        report = asyncio.run(_run(stack, options, say))
    finally:
        if down:
            stack.down(say)
    if json_out:
        emit_json(report.as_dict())
    else:
        _print(report)
    if not report.ok:
        raise SoakFailed(
            f"{report.events} of {events} events; "
            f"{report.lost} lost, {report.duplicated} duplicated, "
            f"{report.invariant_violations} invariant violations, "
            f"{sum(len(f['mismatches']) for f in report.outcomes.values())} unexpected outcomes",
            hint="the report lists each one (`--json`: findings, outcomes[*].mismatches)",
        )


async def _run(stack: Stack, options: SoakOptions, say: Callable[[str], None]) -> SoakReport:
    settings = stack.settings
    # No core SDK log lines on stdout (its retries while chaos has Temporal down): the
    # report is the output, and `--json` stays one document.
    client = await connect(settings, runtime=Runtime(telemetry=TelemetryConfig(logging=None)))
    async with Database(app_dsn(settings), None, min_size=1, max_size=8) as db:
        return await Soak(settings, stack, client, db, options, say).run()


def _print(report: SoakReport) -> None:
    mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
    console.print(
        f"{mark} soak: {report.events} events in {report.rounds} rounds, {report.seconds:.0f}s; "
        f"lost {report.lost}, duplicated {report.duplicated}, "
        f"invariant violations {report.invariant_violations}",
        highlight=False,
    )
    console.print(
        "    events: " + ", ".join(f"{k} {v}" for k, v in sorted(report.events_by_source.items())),
        highlight=False,
        soft_wrap=True,
    )
    for flow, seen in report.outcomes.items():
        latency = report.latency_seconds.get(flow)
        took = f" · p50 {latency['p50']}s p99 {latency['p99']}s" if latency else ""
        flow_mark = "[red]✗[/]" if seen["mismatches"] else "[green]✓[/]"
        console.print(
            f"{flow_mark} {flow}: expected {seen['expected']}, observed {seen['observed']}{took}",
            highlight=False,
            soft_wrap=True,
        )
        for miss in seen["mismatches"]:
            console.print(
                f"    {miss['case']}: {miss['actual']} ≠ {miss['expected']} {miss['problems']}",
                highlight=False,
                soft_wrap=True,
            )
    for kind, items in report.findings.items():
        for item in items:
            console.print(f"[red]✗[/] {kind}: {item}", highlight=False, soft_wrap=True)
    for event in report.chaos:
        console.print(
            f"    chaos at {event['at']}s: {event['action']} ({event['seconds']}s) "
            f"{event['detail']}".rstrip(),
            highlight=False,
        )


def _say(message: str) -> None:
    console.print(f"[green]✓[/] {message}", highlight=False, soft_wrap=True)


def _quiet(_: str) -> None:
    return None
