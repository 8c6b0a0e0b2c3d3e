"""The Prometheus alert rules (infra/prometheus/rules/) are valid, each alert is proven by
`promtool test rules` to fire when it should and to stay quiet when it should not, and
each one carries what an on-call engineer needs: a severity, a summary, a description and
a runbook that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promtool import promtool

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "rules"
UNIT_TESTS = sorted((ROOT / "infra" / "prometheus" / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}
# DESIGN §8: the alerts the ops pack must have (the rest are extras, each with a runbook).
REQUIRED = {
    "AutobizGatePassRateDrop",
    "AutobizApprovalOldestPending",
    "AutobizApprovalBacklogDeep",
    "AutobizBreakerOpen",
    "AutobizReconciliationDrift",
    "AutobizInvariantViolation",
    "AutobizDeployRolledBack",
    "AutobizNoWorker",
    "AutobizTaskQueueBacklog",
}


def _rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in _rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, _rule_files())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: the HITL test with its firing case expected quiet."""
    source = yaml.safe_load((ROOT / "infra/prometheus/tests/hitl.yml").read_text())
    source["rule_files"] = [str(path) for path in _rule_files()]
    case = source["tests"][0]["alert_rule_test"][1]
    assert case["exp_alerts"], "the case chosen must be a firing one"
    case["exp_alerts"] = []
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(source))
    result = subprocess.run(
        [promtool(), "test", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "AutobizApprovalOldestPending" in result.stdout + result.stderr


def test_the_required_alerts_exist() -> None:
    assert REQUIRED <= {rule["alert"] for rule in _alerts()}


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_each_alert_says_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert notes["summary"].strip() and notes["description"].strip()
    runbook = notes["runbook_url"]
    assert re.fullmatch(r"runbooks/RB-\d\d-[a-z0-9-]+\.md", runbook), runbook
    path = ROOT / runbook
    assert path.is_file(), f"{rule['alert']}: {runbook} does not exist"
    assert f"`{rule['alert']}`" in path.read_text(), f"{runbook} does not name {rule['alert']}"
    index = (ROOT / "runbooks" / "README.md").read_text()
    row = next(line for line in index.splitlines() if f"]({path.name})" in line)
    assert f"`{rule['alert']}`" in row, f"runbooks/README.md: {path.name} row lacks the alert"


def _unit_cases() -> dict[str, list[bool]]:
    """Per alert, whether each of its `alert_rule_test` cases expects it firing."""
    cases: dict[str, list[bool]] = {}
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    return cases


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = _unit_cases()
    for name in sorted({rule["alert"] for rule in _alerts()}):
        seen = cases.get(name, [])
        assert True in seen, f"{name}: no unit test where it fires"
        assert False in seen, f"{name}: no unit test where it stays quiet"


def test_unit_tests_load_the_rule_files() -> None:
    for path in UNIT_TESTS:
        listed = yaml.safe_load(path.read_text())["rule_files"]
        assert [(path.parent / f).resolve() for f in listed] == _rule_files(), path.name
