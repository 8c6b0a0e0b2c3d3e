"""`autobiz demo`: the local stack, then a business day for the demo tenant.

Brings up the embedded stack (PostgreSQL, Temporal dev server, sandbox, ingress, and the
worker on the demo config), acts out the day (``autobiz.demo.business_day``), prints
each outcome with its receipts, cost and Web UI link, and exits 1 if any outcome is
not the expected one. The stack stays up for a look around (``--down`` stops it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import typer

from autobiz.cli.output import console, emit_json
from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.demo.business_day import BusinessDay, Case
from autobiz.devstack.sandbox_package import require_sandbox
from autobiz.devstack.stack import Stack
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from autobiz.temporal_client import connect
from kernel.codes import ErrorCode


class DemoMismatch(AutobizError):
    code = ErrorCode.DEMO_MISMATCH
    exit_code = 1


def demo(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable report."),
    down: bool = typer.Option(False, "--down", help="Stop the stack when the day is over."),
) -> None:
    """Run a short business day end to end on the embedded local stack (~1 minute)."""
    require_sandbox("`autobiz demo`")
    base = get_settings()
    # The demo's config is package data (Settings.demo_config_dir), so this works from
    # any directory; the stack validates it before it restarts a running worker.
    stack = Stack(base, config_dir=base.demo_config_dir)
    settings = stack.settings
    started = time.monotonic()
    say = _quiet if json_out else _say
    say("bringing up the local stack (demo config: " + str(settings.config_dir) + ")")
    stack.up(say)
    try:
        cases, links = asyncio.run(_business_day(settings, say))
    finally:
        if down:
            stack.down(say)
    elapsed = time.monotonic() - started
    failed = [c for c in cases if not c.ok]
    if json_out:
        emit_json(
            {
                "ok": not failed,
                "seconds": round(elapsed, 1),
                "cases": [asdict(c) | {"ok": c.ok, "ui": links.get(c.name)} for c in cases],
            }
        )
    else:
        _report(cases, links)
        _closing_lines(settings, elapsed, down)
    if failed:
        names = "; ".join(f"{c.name}: {c.actual} ≠ {c.expected} {c.problems}" for c in failed)
        raise DemoMismatch(f"{len(failed)} of {len(cases)} outcomes differ: {names}")


async def _business_day(
    settings: Settings, say: Callable[[str], None]
) -> tuple[list[Case], dict[str, str]]:
    client = await connect(settings)
    async with Database(app_dsn(settings), None, min_size=1, max_size=4) as db:
        day = BusinessDay(settings, client, db, say)
        try:
            cases = await day.run()
        finally:
            await day.aclose()
        links = {c.name: link for c in cases if (link := day.ui_link(c)) is not None}
    return cases, links


def _closing_lines(settings: Settings, elapsed: float, down: bool) -> None:
    """Where to look next and what became of the stack; each one line even in a pipe
    (a home path split at 80 columns could not be pasted back)."""
    console.print(f"Temporal Web UI: {settings.temporal.ui_url}", soft_wrap=True)
    console.print(
        "Look closer: `autobiz order status <Shopify order>`, `autobiz approvals list "
        "--all`; logs in " + str(settings.home_dir / "logs"),
        soft_wrap=True,
    )
    console.print(
        f"the day took {elapsed:.0f}s; the stack {_afterwards(settings, down)}",
        soft_wrap=True,
    )


def _afterwards(settings: Settings, down: bool) -> str:
    """What became of the stack. ``dev down`` finds it by its home, which is relative to
    the directory the demo ran in unless AUTOBIZ_HOME is absolute: say which one."""
    if down:
        return "is stopped."
    where = "" if settings.home.is_absolute() else f", run in {Path.cwd()},"
    return f"is still up (`autobiz dev down`{where} stops it)."


def _report(cases: list[Case], links: dict[str, str]) -> None:
    """One block per case: what happened, the outcome against the expected one, receipts,
    cost, and its Web UI link on a line of its own, never wrapped (readable at 80 columns,
    and a link or an id stays whole in a pipe for `grep`)."""
    ok = sum(1 for c in cases if c.ok)
    console.print(f"AutoBiz demo: a business day for demo-shop ({ok}/{len(cases)} as expected)")
    for case in cases:
        mark = "[green]✓[/]" if case.ok else "[red]✗[/]"
        outcome = case.actual or "-"
        if case.problems:
            outcome += " (" + "; ".join(case.problems) + ")"
        if outcome != case.expected:
            outcome += f", expected {case.expected}"
        order = case.facts.get("order_id")
        facts = [
            case.workflow_type,
            outcome,
            f"receipts {case.receipts}",
            f"cost ${case.cost_micros / 1_000_000:.4f}",
            *([f"order {order}"] if order is not None else []),
        ]
        console.print(f"{mark} {case.name}", highlight=False, soft_wrap=True)
        console.print("    " + " · ".join(facts), highlight=False, soft_wrap=True)
        if (link := links.get(case.name)) is not None:
            console.print(f"    {link}", highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    console.print(f"[green]✓[/] {message}", highlight=False, soft_wrap=True)


def _quiet(_: str) -> None:
    return None
