"""The exit report judges from evidence: a passing deploy gate meets EXIT-01/02, a smoke
run or a failing gate does not, and a soak counts only without losses or duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autobiz.demo.scenarios import SCENARIOS
from autobiz.gate.exit_report import write_exit_report

pytestmark = pytest.mark.unit
WORKFLOWS = {w for s in SCENARIOS for w in s.workflows}


def _evidence(tmp: Path, *, profile: str, p0_ok: bool) -> Path:
    def gate(name: str, ok: bool, passed: int, trials: int) -> dict[str, Any]:
        verdict = "pass" if ok else "below_threshold"
        return {
            "name": name,
            "ok": ok,
            "verdict": verdict,
            "passed": passed,
            "trials": trials,
            "rate": passed / trials,
            "lcb": 0.96 if ok else 0.5,
        }

    data = {
        "gate_run_id": "gate-x",
        "profile": profile,
        "deploy_gate": profile == "deploy",
        "runs": 19,
        "finished_at": "2026-12-02T15:00:00+00:00",
        "gates": [gate("P0", p0_ok, 114 if p0_ok else 113, 114), gate("P1", True, 76, 76)],
        "scenarios": [{"scenario": "wismo", "passed": 19, "trials": 19}],
    }
    (tmp / "gate-x.md").write_text("# Gate evidence gate-x\n")
    path = tmp / "latest.json"
    path.write_text(json.dumps(data))
    return path


def _statuses(report: Path) -> dict[str, str]:
    rows = [
        line.split("|")
        for line in report.read_text().splitlines()
        if line.startswith("| EXIT-") or line.startswith("| ENTRY-")
    ]
    return {r[1].strip(): r[3].strip() for r in rows}


def test_a_passing_deploy_gate_meets_exit_01_and_02(tmp_path: Path) -> None:
    report = tmp_path / "docs" / "exit-report.md"
    write_exit_report(
        _evidence(tmp_path, profile="deploy", p0_ok=True), report, golden_workflows=WORKFLOWS
    )
    status = _statuses(report)
    assert len(status) == 18
    assert status["EXIT-01"] == status["EXIT-02"] == status["EXIT-12"] == "met"
    assert status["EXIT-04"] == "not met"  # no soak report
    assert (tmp_path / "docs" / "evidence" / "gate-x.md").is_file()
    assert "(evidence/gate-x.md)" in report.read_text()


def test_a_failing_gate_or_a_smoke_run_does_not(tmp_path: Path) -> None:
    report = tmp_path / "exit-report.md"
    write_exit_report(
        _evidence(tmp_path, profile="deploy", p0_ok=False), report, golden_workflows=WORKFLOWS
    )
    assert _statuses(report)["EXIT-01"] == "not met"
    write_exit_report(
        _evidence(tmp_path, profile="ci", p0_ok=True), report, golden_workflows=WORKFLOWS
    )
    status = _statuses(report)
    assert status["EXIT-01"] == status["EXIT-02"] == "not met"
    assert "smoke run" in report.read_text()


def test_a_workflow_without_a_golden_scenario_fails_traceability(tmp_path: Path) -> None:
    report = tmp_path / "exit-report.md"
    write_exit_report(tmp_path / "none.json", report, golden_workflows=WORKFLOWS - {"WISMO"})
    status = _statuses(report)
    assert status["EXIT-11"] == "not met" and "WISMO" in report.read_text()
    assert status["EXIT-01"] == "not met"  # no evidence at all


@pytest.mark.parametrize(
    ("soak", "status"),
    [
        ({"events": 320, "lost": 0, "duplicated": 0, "invariant_violations": []}, "partly met"),
        ({"events": 320, "lost": 1, "duplicated": 0, "invariant_violations": []}, "not met"),
        ({"events": 120, "lost": 0, "duplicated": 0, "invariant_violations": []}, "not met"),
        ({"events": 320, "lost": [], "duplicated": ["x"], "invariant_violations": []}, "not met"),
    ],
)
def test_the_soak_counts_only_without_losses(
    tmp_path: Path, soak: dict[str, Any], status: str
) -> None:
    file = tmp_path / "soak.json"
    file.write_text(json.dumps(soak))
    report = tmp_path / "exit-report.md"
    write_exit_report(tmp_path / "none.json", report, golden_workflows=WORKFLOWS, soak=file)
    assert _statuses(report)["EXIT-04"] == status
