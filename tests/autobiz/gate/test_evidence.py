"""The evidence the gate writes, from trials: verdicts per gate and scenario, links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autobiz.gate import evidence as ev
from autobiz.gate.trials import Round, Trial

pytestmark = pytest.mark.unit

UI = "http://127.0.0.1:8233/namespaces/default/workflows"


def _trial(number: int, scenario: str, gate: str, ok: bool) -> Trial:
    case = {
        "name": f"{scenario} case",
        "workflow_type": "Refund",
        "workflow_id": f"refund:demo-shop:{number}",
        "expected": "refunded",
        "actual": "refunded" if ok else "failed:PROVIDER_INVALID_REQUEST",
        "ok": ok,
        "problems": [] if ok else ["Stripe shows 0 refunded, expected 1000"],
        "ui": f"{UI}/refund%3Ademo-shop%3A{number}",
    }
    return Trial(number, scenario, gate, ok, 1.5, [case])


def _evidence(trials: list[Trial], profile: str = "deploy") -> dict[str, Any]:
    rounds = [Round(n, ["error 503 POST /stripe/v1/x"], [], 2.0) for n in {t.round for t in trials}]
    return ev.build(
        run_id="gate-test",
        profile=ev.PROFILES[profile],
        started=datetime.now(UTC),
        trials=trials,
        rounds=rounds,
        ui_url=UI,
    )


def test_default_runs_reach_the_p1_bound() -> None:
    # Four P1 scenarios a round: 19 rounds are 76 P1 runs, the first count >= 73.
    assert ev.PROFILES["deploy"].default_runs(4) == 19
    assert ev.PROFILES["deploy"].default_runs(1) == 73
    assert ev.PROFILES["ci"].default_runs(4) == 1


def test_one_failed_p0_run_fails_the_gate(tmp_path: Path) -> None:
    trials = [_trial(n, "refund-below-threshold", "P0", ok=n != 3) for n in range(1, 6)]
    evidence = _evidence(trials)
    assert evidence["ok"] is False
    [p0] = evidence["gates"]
    assert (p0["passed"], p0["trials"], p0["verdict"]) == (4, 5, "below_threshold")
    json_path, md_path = ev.write(evidence, tmp_path)
    assert json.loads(json_path.read_text())["gate_run_id"] == "gate-test"
    assert json.loads((tmp_path / ev.LATEST).read_text()) == json.loads(json_path.read_text())
    text = md_path.read_text()
    assert "**FAIL**" in text
    assert f"[refund:demo-shop:3]({UI}/refund%3Ademo-shop%3A3)" in text
    assert "Stripe shows 0 refunded" in text


def test_a_short_deploy_run_is_insufficient_while_ci_passes() -> None:
    trials = [_trial(1, "order-fulfilled", "P0", True), _trial(1, "wismo", "P1", True)]
    deploy = _evidence(trials)
    verdicts = {g["name"]: g["verdict"] for g in deploy["gates"]}
    assert verdicts == {"P0": "pass", "P1": "insufficient_runs"} and deploy["ok"] is False
    ci = _evidence(trials, "ci")
    assert ci["ok"] is True and ci["deploy_gate"] is False
    assert "not a deploy gate" in ev.markdown(ci)
