"""`autobiz gate` as CI runs it: the whole golden suite once under the round's faults on
a stack of its own (``--profile ci``), then a provider that refuses every refund — a real
fault armed in the sandbox, as Stripe would misbehave — which must fail the P0 gate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from autobiz.demo.scenarios import SCENARIOS
from autobiz.gate.faults import ROUND_FAULTS
from autobiz.settings import Settings
from sandbox.control_client import SandboxControl
from tests.support.stack import autobiz

pytestmark = pytest.mark.golden


async def _refuse_refunds(env: dict[str, str]) -> None:
    """Stripe answers every refund with a 400 (a request it will never accept)."""
    control = SandboxControl(
        f"http://127.0.0.1:{env['AUTOBIZ_SANDBOX__PORT']}",
        settings=Settings(home=Path(env["AUTOBIZ_HOME"])),
    )
    try:
        await control.fault("error", "/stripe/v1/refunds", method="POST", count=100, status=400)
    finally:
        await control.aclose()


def test_ci_gate_passes_and_a_refusing_provider_fails_it(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "evidence"
    ui = f"http://127.0.0.1:{stack_env['AUTOBIZ_TEMPORAL__UI_PORT']}/"
    run = autobiz(
        stack_env, "gate", "--profile", "ci", "--json", "--out", str(out), check=False, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    evidence = json.loads(run.stdout)
    assert evidence["ok"] is True and evidence["deploy_gate"] is False
    assert {g["name"]: g["verdict"] for g in evidence["gates"]} == {"P0": "pass", "P1": "pass"}
    assert sorted(t["scenario"] for t in evidence["trials"]) == sorted(s.name for s in SCENARIOS)
    for trial in evidence["trials"]:
        assert trial["ok"] and trial["cases"], trial
        for case in trial["cases"]:
            assert case["workflow_id"] and case["ui"].startswith(ui), case
    # The round's faults were armed, and the flows met most of them (a fault is spent by
    # the first matching call; one whose call never came stays listed as not fired).
    [round_] = evidence["rounds"]
    assert len(round_["faults_armed"]) == len(ROUND_FAULTS)
    assert len(round_["faults_unfired"]) <= 2, round_
    saved = json.loads(Path(evidence["evidence"]["json"]).read_text())
    assert saved["gate_run_id"] == evidence["gate_run_id"]
    markdown = Path(evidence["evidence"]["markdown"]).read_text()
    assert "**PASS**" in markdown and ui in markdown

    # Stripe now refuses refunds: the refund scenario cannot reach `refunded`.
    asyncio.run(_refuse_refunds(stack_env))
    failed = autobiz(
        stack_env,
        "gate",
        "--only",
        "refund-below-threshold",
        "--only",
        "daily-closeout",
        "--runs",
        "1",
        "--json",
        "--out",
        str(out),
        check=False,
        timeout=600,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error[GATE_FAILED]" in failed.stderr and "Traceback" not in failed.stderr
    verdict = json.loads(failed.stdout)
    gates = {g["name"]: g for g in verdict["gates"]}
    assert gates["P0"]["verdict"] == "below_threshold" and gates["P0"]["passed"] == 0
    # One P1 run can never reach an LCB of 0.95 on the deploy profile: its own reason.
    assert gates["P1"]["verdict"] == "insufficient_runs"
    [refund] = [t for t in verdict["trials"] if t["scenario"] == "refund-below-threshold"]
    [case] = [c for c in refund["cases"] if c["workflow_type"] == "Refund"]
    assert case["actual"] != "refunded" and not case["ok"]
    assert any("Stripe shows 0 refunded" in p for p in case["problems"]), case
    latest = json.loads((out / "latest.json").read_text())
    assert latest["gate_run_id"] == verdict["gate_run_id"] != evidence["gate_run_id"]
