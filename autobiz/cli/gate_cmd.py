"""`autobiz gate`: the golden suite under injected faults, judged per gate, with evidence.

Brings up the embedded stack on the demo's config (as ``autobiz demo`` does), runs every
golden scenario (:mod:`autobiz.demo.scenarios`) ``--runs`` times with the round's faults
armed in the sandbox (:mod:`autobiz.gate.faults`), judges the P0 gate (every run passes)
and the P1 gate (Wilson lower bound ≥ 0.95), writes the evidence (JSON and Markdown)
under ``$AUTOBIZ_HOME/gate/`` or ``--out``, and exits 1 below a gate (``GATE_FAILED``)
or with too few runs to judge one (``GATE_INSUFFICIENT_RUNS``). ``--exit-report`` writes
the Phase 1 exit report from the latest evidence instead (docs/operations.md#deploy-gate).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer

from autobiz.cli.output import console, emit_json
from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.demo import scenarios as golden
from autobiz.demo.golden import run_suite
from autobiz.devstack.sandbox_package import require_sandbox
from autobiz.devstack.stack import Stack
from autobiz.errors import AutobizError, UsageError
from autobiz.gate import evidence as ev
from autobiz.gate.trials import Round, Trial
from autobiz.gate.wilson import Verdict
from autobiz.settings import Settings, get_settings
from autobiz.temporal_client import connect
from kernel.codes import ErrorCode


class GateFailed(AutobizError):
    code = ErrorCode.GATE_FAILED
    exit_code = 1


class GateInsufficientRuns(AutobizError):
    code = ErrorCode.GATE_INSUFFICIENT_RUNS
    exit_code = 1


def gate(
    runs: int | None = typer.Option(
        None,
        "--runs",
        min=1,
        help="Rounds of the suite (default: the fewest whose P1 runs can reach the P1 LCB).",
    ),
    profile: str = typer.Option(
        "deploy",
        "--profile",
        help="deploy: P0 every run, P1 LCB ≥ 0.95. ci: a smoke run, every run must pass.",
    ),
    only: list[str] = typer.Option(
        [], "--only", help="Run only this scenario (repeatable); see `--list`."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the evidence (default $AUTOBIZ_HOME/gate)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the evidence as JSON."),
    down: bool = typer.Option(False, "--down", help="Stop the stack when the gate is done."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the golden scenarios."),
    exit_report: bool = typer.Option(
        False, "--exit-report", help="Write the Phase 1 exit report from the latest evidence."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Where --exit-report writes (default docs/exit-report.md)."
    ),
    soak: Path | None = typer.Option(
        None, "--soak", help="For --exit-report: the JSON `autobiz soak --json` printed."
    ),
) -> None:
    """Run the golden suite under injected faults; exit 1 below a gate (the deploy gate)."""
    base = get_settings()
    if profile not in ev.PROFILES:
        raise UsageError(
            f"unknown profile {profile!r}", hint="--profile is one of: " + ", ".join(ev.PROFILES)
        )
    try:
        chosen = golden.by_name(only)
    except KeyError as exc:
        raise UsageError(
            f"unknown scenario {exc.args[0]!r}", hint="`autobiz gate --list` names them"
        ) from None
    out_dir = (out or base.home_dir / "gate").expanduser()
    if list_scenarios:
        _list(json_out)
        return
    if exit_report:
        _exit_report(out_dir / ev.LATEST, report, soak, json_out)
        return
    rules = ev.PROFILES[profile]
    rounds_wanted = runs or rules.default_runs(sum(s.gate == "P1" for s in chosen))
    require_sandbox("`autobiz gate`")
    stack = Stack(base, config_dir=base.demo_config_dir)
    settings = stack.settings
    say = _quiet if json_out else _say
    say(f"bringing up the local stack (demo config: {settings.config_dir})")
    stack.up(say)
    started = datetime.now(UTC)
    run_id = f"gate-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    try:
        trials, rounds = asyncio.run(_suite(settings, chosen, rounds_wanted, say))
    finally:
        if down:
            stack.down(say)
    evidence = ev.build(
        run_id=run_id,
        profile=rules,
        started=started,
        trials=trials,
        rounds=rounds,
        ui_url=settings.temporal.ui_url,
    )
    json_path, md_path = ev.write(evidence, out_dir)
    if json_out:
        emit_json(evidence | {"evidence": {"json": str(json_path), "markdown": str(md_path)}})
    else:
        _report(evidence, json_path, md_path)
    _verdict(evidence, md_path)


async def _suite(
    settings: Settings, chosen: list[golden.Scenario], runs: int, say: Callable[[str], None]
) -> tuple[list[Trial], list[Round]]:
    client = await connect(settings)
    async with Database(app_dsn(settings), None, min_size=1, max_size=4) as db:
        return await run_suite(settings, client, db, chosen, runs, say)


def _exit_report(latest: Path, report: Path | None, soak: Path | None, json_out: bool) -> None:
    from autobiz.gate.exit_report import ROOT, write_exit_report

    if not (ROOT / "docs" / "traceability.md").is_file():
        raise UsageError(
            f"{ROOT} is not an AutoBiz source checkout (no docs/traceability.md)",
            hint="run `autobiz gate --exit-report` from the repository's virtualenv",
        )
    if soak is not None and not soak.is_file():
        raise UsageError(f"no soak report at {soak}", hint="`autobiz soak --json > soak.json`")
    workflows = {w for s in golden.SCENARIOS for w in s.workflows}
    path = write_exit_report(latest, report, golden_workflows=workflows, soak=soak)
    if json_out:
        emit_json({"report": str(path), "evidence": str(latest) if latest.is_file() else None})
    else:
        console.print(f"exit report written to {path}", soft_wrap=True)


def _verdict(evidence: dict[str, object], md_path: Path) -> None:
    """Raise the gate's failure when a gate did not pass: below a threshold wins over
    too few runs (both exit 1)."""
    gates = evidence["gates"]
    assert isinstance(gates, list)
    failed = [g for g in gates if not g["ok"]]
    if evidence["ok"] and not failed:
        return
    why = "; ".join(f"{g['name']}: {g['reason']}" for g in failed) or "no gate had any run"
    hint = f"the evidence: {md_path}"
    if failed and all(g["verdict"] == Verdict.INSUFFICIENT_RUNS for g in failed):
        raise GateInsufficientRuns(f"insufficient runs: {why}", hint=hint)
    raise GateFailed(f"gate failed: {why}", hint=hint)


def _report(evidence: dict[str, object], json_path: Path, md_path: Path) -> None:
    gates = evidence["gates"]
    assert isinstance(gates, list)
    mark = "[green]PASS[/]" if evidence["ok"] else "[red]FAIL[/]"
    console.print(f"AutoBiz gate {evidence['gate_run_id']} ({evidence['profile']}): {mark}")
    for g in gates:
        sign = "[green]✓[/]" if g["ok"] else "[red]✗[/]"
        console.print(
            f"{sign} {g['name']}: {g['passed']}/{g['trials']} passed, rate {g['rate']:.4f}, "
            f"LCB {g['lcb']:.4f} — {g['verdict']}: {g['reason']}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"evidence: {json_path}\n          {md_path}", soft_wrap=True)


def _list(json_out: bool) -> None:
    rows = [
        {"name": s.name, "gate": s.gate, "workflows": list(s.workflows), "summary": s.summary}
        for s in golden.SCENARIOS
    ]
    if json_out:
        emit_json({"scenarios": rows})
        return
    for row in rows:
        console.print(
            f"{row['name']} ({row['gate']}): {row['summary']}", highlight=False, soft_wrap=True
        )


def _say(message: str) -> None:
    console.print(f"[green]✓[/] {message}", highlight=False, soft_wrap=True)


def _quiet(_: str) -> None:
    return None
