"""Running the golden suite: ``runs`` rounds, each with the round's faults armed in the
sandbox, the scenarios of a round run concurrently (the closeout after them), every
outcome judged by Temporal and the providers (:mod:`autobiz.demo.scenarios`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from autobiz.db.database import Database
from autobiz.demo.business_day import BusinessDay, Case
from autobiz.demo.scenarios import Scenario
from autobiz.gate.faults import ROUND_FAULTS, describe
from autobiz.gate.trials import Round, Trial
from autobiz.settings import Settings

Progress = Callable[[str], None]


def _fault_key(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["kind"], rule.get("method", "*"), rule["path"], rule.get("operation"))


async def _case_record(day: BusinessDay, case: Case) -> dict[str, Any]:
    """What the evidence keeps of a case: its workflow's id and run id (the run this
    scenario made, which Temporal describes), outcome, problems and Web UI link."""
    run_id: str | None = None
    ui = day.ui_link(case)
    if case.workflow_id is not None:
        try:
            run_id = (await day.client.get_workflow_handle(case.workflow_id).describe()).run_id
        except RPCError:
            run_id = None  # the flow never started: the case says so in its problems
    if ui is not None and run_id is not None:
        ui = f"{ui}/{run_id}/history"
    return {
        "name": case.name,
        "workflow_type": case.workflow_type,
        "workflow_id": case.workflow_id,
        "run_id": run_id,
        "expected": case.expected,
        "actual": case.actual,
        "ok": case.ok,
        "problems": list(case.problems),
        "ui": ui,
    }


async def _trial(day: BusinessDay, scenario: Scenario, number: int) -> Trial:
    own = day.fork()
    started = time.monotonic()
    error: str | None = None
    try:
        await scenario.act(own)
    except Exception as exc:  # a driver's call failed: the scenario did not pass
        error = f"{type(exc).__name__}: {exc}"
    cases = [await _case_record(own, c) for c in own.cases]
    ok = error is None and bool(cases) and all(c["ok"] for c in cases)
    return Trial(
        number, scenario.name, scenario.gate, ok, round(time.monotonic() - started, 2), cases, error
    )


async def _arm(day: BusinessDay, faults: Sequence[dict[str, Any]]) -> list[str]:
    """Arm the round's faults, except those still armed from the last round (a fault
    whose call did not come yet stays armed; it is not doubled)."""
    armed = {_fault_key(r) for r in await day.control.armed_faults()}
    names = []
    for rule in faults:
        if _fault_key(rule) not in armed:
            fields = {k: v for k, v in rule.items() if k not in ("kind", "path")}
            await day.control.fault(rule["kind"], rule["path"], **fields)
        names.append(describe(rule))
    return names


async def run_suite(
    settings: Settings,
    client: Client,
    db: Database,
    scenarios: Sequence[Scenario],
    runs: int,
    say: Progress,
    faults: Sequence[dict[str, Any]] = ROUND_FAULTS,
) -> tuple[list[Trial], list[Round]]:
    """Every scenario ``runs`` times; the sandbox is left with no armed faults."""
    day = BusinessDay(settings, client, db, say, second_tenant=None)
    trials: list[Trial] = []
    rounds: list[Round] = []
    try:
        await day.prepare()
        for number in range(1, runs + 1):
            started = time.monotonic()
            armed = await _arm(day, faults)
            say(f"round {number}/{runs}: {len(scenarios)} scenarios, {len(armed)} faults armed")
            together = [s for s in scenarios if not s.last]
            done = list(await asyncio.gather(*(_trial(day, s, number) for s in together)))
            for scenario in (s for s in scenarios if s.last):
                done.append(await _trial(day, scenario, number))
            ours = {_fault_key(r) for r in faults}
            left = [describe(r) for r in await day.control.armed_faults() if _fault_key(r) in ours]
            for trial in done:
                say(f"round {number}: {trial.scenario} {'passed' if trial.ok else 'FAILED'}")
            trials.extend(done)
            rounds.append(Round(number, armed, left, round(time.monotonic() - started, 1)))
    finally:
        try:
            await day.control.clear_faults()
        finally:
            await day.aclose()
    return trials, rounds
