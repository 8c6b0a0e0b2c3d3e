"""The BusinessConfig compiler: one bad config per rule → its code, its line, exit != 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kernel.compiler import compile_text

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo-shop.yaml"


def demo() -> dict:
    return yaml.safe_load(DEMO.read_text())


def codes(text: str) -> list[str]:
    return [d.code for d in compile_text(text).diagnostics]


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def test_the_example_config_compiles_cleanly() -> None:
    result = compile_text(DEMO.read_text())
    assert result.ok, [d.format("demo") for d in result.diagnostics]
    assert result.config is not None
    for wf in ("order_fulfill", "payment_failure", "refund", "order_cancellation"):
        pol = result.config.policy_for(wf)
        assert pol.tenant_id == "demo-shop" and pol.bounds.max_steps > 0


def bad_cc01_unknown_tool(d: dict) -> dict:
    d["workflows"]["refund"]["tools"].append("stripe.teleport@1")
    return d


def bad_cc01_missing_tool(d: dict) -> dict:
    d["workflows"]["refund"]["tools"].remove("shopify.refund_create@1")
    d["workflows"]["refund"]["hitl"] = d["workflows"]["refund"]["hitl"][:1]
    return d


def bad_cc02(d: dict) -> dict:
    del d["workflows"]["refund"]["bounds"]["max_cost_usd"]
    return d


def bad_cc03(d: dict) -> dict:
    d["workflows"]["refund"]["scopes"].remove("payments:refund")
    return d


def bad_cc04_auto_approve(d: dict) -> dict:
    d["workflows"]["refund"]["hitl"][0]["mode"] = "AUTO_APPROVE"
    del d["workflows"]["refund"]["hitl"][0]["when"]
    return d


def bad_cc04_no_rule(d: dict) -> dict:
    rules = d["workflows"]["order_fulfill"]["hitl"]
    d["workflows"]["order_fulfill"]["hitl"] = [
        r for r in rules if r["tool"] != "stripe.capture_payment@1"
    ]
    return d


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (bad_cc01_unknown_tool, "CC-01"),
        (bad_cc01_missing_tool, "CC-01"),
        (bad_cc02, "CC-02"),
        (bad_cc03, "CC-03"),
        (bad_cc04_auto_approve, "CC-04"),
        (bad_cc04_no_rule, "CC-04"),
    ],
)
def test_each_rule_has_its_code(mutate, code: str) -> None:
    assert codes(dump(mutate(demo()))) == [code]


def test_missing_bounds_and_scopes_entirely() -> None:
    d = demo()
    del d["workflows"]["refund"]["bounds"]
    del d["workflows"]["refund"]["scopes"]
    assert sorted(codes(dump(d))) == ["CC-02", "CC-03"]


def test_disabled_workflows_are_not_checked() -> None:
    d = bad_cc02(demo())
    d["workflows"]["refund"]["enabled"] = False
    assert codes(dump(d)) == []


def test_schema_errors_carry_line_numbers() -> None:
    text = DEMO.read_text().replace("max_steps: 30", "max_steps: thirty\n      colour: blue")
    result = compile_text(text)
    lines = text.splitlines()
    assert {d.code for d in result.diagnostics} == {"CFG-SCHEMA"}
    for d in result.diagnostics:
        assert d.line is not None
        assert ("thirty" in lines[d.line - 1]) or ("colour" in lines[d.line - 1])


def test_yaml_syntax_error_has_a_line() -> None:
    result = compile_text("version: 1\ntenant: demo-shop\nworkflows: [unclosed\n")
    assert [d.code for d in result.diagnostics] == ["CFG-YAML"]
    assert result.diagnostics[0].line in (3, 4)


def test_hitl_condition_syntax_error_names_line_and_column() -> None:
    text = DEMO.read_text().replace(
        'when: "input.amount_minor >= 5000"    # 50.00',
        'when: "input.amount_minor => 5000"    # 50.00',
    )
    result = compile_text(text)
    assert [d.code for d in result.diagnostics] == ["CFG-HITL"]
    d = result.diagnostics[0]
    assert d.line is not None
    assert "=>" in text.splitlines()[d.line - 1]
    assert "column 20" in d.message


def test_diagnostics_are_deterministic() -> None:
    text = dump(bad_cc03(bad_cc02(demo())))
    assert compile_text(text).diagnostics == compile_text(text).diagnostics


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (bad_cc01_unknown_tool, "CC-01"),
        (bad_cc02, "CC-02"),
        (bad_cc03, "CC-03"),
        (bad_cc04_auto_approve, "CC-04"),
    ],
)
def test_cli_config_check_exits_non_zero_with_the_code(tmp_path: Path, mutate, code: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump(mutate(demo())))
    proc = _cli("config", "check", str(bad))
    assert proc.returncode != 0
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"{bad}:") and f": {code} " in first, proc.stdout
    assert "error[CONFIG_INVALID]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_config_check_passes_the_example() -> None:
    proc = _cli("config", "check", str(DEMO))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_cli_tools_list_and_schema() -> None:
    proc = _cli("tools", "list", "--json")
    assert proc.returncode == 0
    assert "stripe.create_refund@1" in proc.stdout
    proc = _cli("tools", "schema", "stripe.create_refund@1")
    assert proc.returncode == 0 and '"additionalProperties": false' in proc.stdout
    proc = _cli("tools", "schema", "nope@1")
    assert proc.returncode != 0 and "TOOL_UNKNOWN" in proc.stderr
