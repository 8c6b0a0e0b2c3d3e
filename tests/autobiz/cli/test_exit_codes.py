"""Usage errors and exit codes through the real `autobiz` process (issue 10).

Before: Typer's boxed "Error" panel for usage errors, ``error[INTERNAL]`` for non-UTF-8
ids, exit 2 for every runtime error. Now: ``error[USAGE]`` (or a more specific code) and
a hint for every usage error, and an exit code per kind of failure
(``autobiz.errors.ExitCode``, docs/operations.md#exit-codes). The exit-1 case through the
real CLI (a replay that diverges) is
tests/replay/test_replay_cmd.py::test_history_from_changed_code_is_nondeterministic.
"""

from __future__ import annotations

import re

import pytest

from autobiz.errors import EXIT_CODES, AutobizError, ExitCode, UsageError, exit_code_for
from tests.autobiz.cli.support import ROOT, Cli, CliResult

BOX = ("╭", "╰", "│")


def _clean_refusal(result: CliResult, code: str, exit_code: int) -> None:
    where = f"autobiz {' '.join(result.args)!r} -> {result.code}\n{result.stderr}"
    assert result.code == exit_code, where
    assert re.search(rf"^error\[{code}\]: \S", result.stderr, re.MULTILINE), where
    assert "hint: " in result.stderr, where
    assert "Traceback" not in result.stderr + result.stdout, where
    assert not any(c in result.stderr for c in BOX), where  # no Typer box


USAGE_ERRORS = {
    "no command": (),
    "unknown command": ("nosuch",),
    "unknown subcommand": ("order", "nosuch"),
    "missing argument": ("order", "start"),
    "missing option": ("refund", "request", "1001"),
    "unknown option": ("order", "start", "1001", "--bogus"),
    "bad --limit": ("approvals", "list", "--limit", "x"),
    "--limit out of range": ("approvals", "list", "--limit", "0"),
    "option without its value": ("refund", "request", "1001", "--amount"),
    "non-UTF-8 id": ("order", "status", "10\udcff01"),  # bytes 10 FF 01 in argv
    "non-UTF-8 option": ("refund", "request", "1001", "--amount", "5", "--note", "\udce9"),
    "--json on a command without it": ("version", "--json"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(USAGE_ERRORS))
async def test_usage_errors_print_a_code_and_a_hint(offline: Cli, name: str) -> None:
    result = await offline(*USAGE_ERRORS[name], check=False)
    _clean_refusal(result, "USAGE", ExitCode.USAGE)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("\u0665\u0660", "USD", "AMOUNT_INVALID"),  # Arabic-Indic 50
        ("\uff15", "USD", "AMOUNT_INVALID"),  # full-width 5
        (" 5 ", "USD", "AMOUNT_INVALID"),
        ("5.0", "JPY", "AMOUNT_INVALID"),
        ("5", "ZZZ", "CURRENCY_UNKNOWN"),
    ],
)
async def test_amounts_and_currencies_are_bad_input(
    offline: Cli, amount: str, currency: str, code: str
) -> None:
    result = await offline(
        "refund",
        "request",
        "1001",
        "--amount",
        amount,
        "--currency",
        currency,
        "--payment-intent",
        "pi_1",
        check=False,
    )
    _clean_refusal(result, code, ExitCode.USAGE)
    assert result.stdout == ""


@pytest.mark.e2e
async def test_json_errors_are_one_json_document(offline: Cli) -> None:
    usage = await offline("approvals", "list", "--limit", "x", "--json", check=False)
    _clean_refusal(usage, "USAGE", ExitCode.USAGE)
    assert usage.json()["error"]["code"] == "USAGE"
    assert usage.json()["error"]["exit_code"] == ExitCode.USAGE

    down = await offline("order", "status", "1001", "--json", check=False)
    _clean_refusal(down, "TEMPORAL_UNREACHABLE", ExitCode.UNAVAILABLE)
    assert down.json()["error"] == {
        "code": "TEMPORAL_UNREACHABLE",
        "message": down.json()["error"]["message"],
        "hint": down.json()["error"]["hint"],
        "exit_code": ExitCode.UNAVAILABLE,
    }


@pytest.mark.e2e
async def test_each_kind_of_failure_has_its_exit_code(offline: Cli) -> None:
    ok = await offline("version")
    assert ok.code == ExitCode.OK
    flag = await offline("--version")
    assert flag.code == ExitCode.OK and flag.stdout.strip() == ok.stdout.strip() != ""

    bad_input = await offline("order", "start", "10 01", check=False)
    _clean_refusal(bad_input, "ORDER_ID_INVALID", ExitCode.USAGE)

    # Refused by policy: the tenant's BusinessConfig does not enable the workflow.
    text = (offline.config_dir / "demo-shop.yaml").read_text()
    disabled = text.replace(
        "  reconciliation:\n    enabled: true", "  reconciliation:\n    enabled: false", 1
    )
    assert disabled != text
    (offline.config_dir / "demo-shop.yaml").write_text(disabled)
    refused = await offline("reconcile", "run", check=False)
    _clean_refusal(refused, "WORKFLOW_DISABLED", ExitCode.REFUSED)
    (offline.config_dir / "demo-shop.yaml").write_text(text)

    temporal = await offline("order", "status", "1001", check=False)
    _clean_refusal(temporal, "TEMPORAL_UNREACHABLE", ExitCode.UNAVAILABLE)
    database = await offline("approvals", "list", check=False)
    _clean_refusal(database, "DATABASE_UNREACHABLE", ExitCode.UNAVAILABLE)


@pytest.mark.unit
def test_error_classes_carry_their_exit_code() -> None:
    assert UsageError("x").exit_code == ExitCode.USAGE
    assert AutobizError("x", code="FLOW_FAILED").exit_code == ExitCode.FAILED
    assert AutobizError("x", code="PAYMENT_NOT_FOR_ORDER").exit_code == ExitCode.REFUSED
    assert AutobizError("x", code="CROSS_TENANT_REFUSED").exit_code == ExitCode.REFUSED
    assert AutobizError("x", code="PERMISSION_DENIED").exit_code == ExitCode.REFUSED
    assert AutobizError("x", code="APPROVAL_REJECTED").exit_code == ExitCode.REFUSED
    assert AutobizError("x", code="DATABASE_UNREACHABLE").exit_code == ExitCode.UNAVAILABLE
    assert AutobizError("x", code="X", exit_code=7).exit_code == 7
    assert exit_code_for("NO_SUCH_CODE") == ExitCode.FAILED
    assert {int(c) for c in EXIT_CODES.values()} == {1, 2, 3, 4}


# ``code=ErrorCode.X`` (and ``code = ErrorCode.X`` in a class); tests/hygiene/
# test_error_codes.py keeps codes from being spelled as literals.
_CODE_LITERAL = re.compile(r"""\bcode\s*=\s*ErrorCode\.([A-Z][A-Z0-9_]+)\b""")


@pytest.mark.unit
def test_every_code_the_cli_can_raise_has_an_exit_code() -> None:
    """A new error code must be classified in autobiz.errors.EXIT_CODES (the one table),
    else scripts would see the class default."""
    missing: dict[str, str] = {}
    for folder in ("autobiz", "starters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for code in _CODE_LITERAL.findall(path.read_text()):
                if code not in EXIT_CODES:
                    missing.setdefault(code, str(path.relative_to(ROOT)))
    assert not missing, f"codes without an exit code in EXIT_CODES: {missing}"


@pytest.mark.unit
def test_exit_codes_are_documented() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "## Exit codes" in doc
    for member in ExitCode:
        assert re.search(rf"^\| `{int(member)}` \|", doc, re.MULTILINE), member
    readme = (ROOT / "README.md").read_text()
    assert "docs/operations.md#exit-codes" in readme
