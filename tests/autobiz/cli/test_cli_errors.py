"""What a user sees when the stack is down or the input is wrong: a stable code, a hint,
a non-zero exit, and no traceback — before anything is started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.autobiz.cli.support import Cli

pytestmark = pytest.mark.e2e


async def test_stack_down_gives_a_code_and_the_fix(offline: Cli) -> None:
    temporal, database, approve = await asyncio.gather(
        offline("order", "status", "1001", check=False),
        offline("approvals", "list", check=False),
        offline("approvals", "approve", "r-1", "--as", "ana", check=False),
    )
    assert temporal.refused("TEMPORAL_UNREACHABLE"), temporal.stderr
    assert database.refused("DATABASE_UNREACHABLE"), database.stderr
    assert approve.refused("DATABASE_UNREACHABLE"), approve.stderr
    for result in (temporal, database, approve):
        assert "autobiz dev up" in result.stderr
        assert "WARNING" not in result.stderr  # one clear line, not the pool's retries


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ("refund", "request", "1001", "--amount", "abc", "--payment-intent", "pi_1"),
            "AMOUNT_INVALID",
        ),
        (
            ("refund", "request", "1001", "--amount", "0", "--payment-intent", "pi_1"),
            "AMOUNT_INVALID",
        ),
        (
            ("refund", "request", "1001", "--amount", "10", "--currency", "dollars"),
            "CURRENCY_INVALID",
        ),
        (
            ("refund", "request", "1001", "--amount", "10", "--payment-intent", "ch_1"),
            "PAYMENT_INTENT_INVALID",
        ),
        (
            ("refund", "request", "1001", "--amount", "10", "--request-id", "no spaces"),
            "REQUEST_ID_INVALID",
        ),
        (("order", "start", "10 01"), "ORDER_ID_INVALID"),
        (("order", "status", "1001", "--tenant", "Bad_Tenant"), "TENANT_INVALID"),
        (("approvals", "list", "--tenant", "Bad_Tenant"), "TENANT_INVALID"),
    ],
)
async def test_bad_input_is_refused_before_any_connection(
    offline: Cli, args: tuple[str, ...], code: str
) -> None:
    result = await offline(*args, check=False)
    assert result.refused(code), result.stderr
    assert result.stdout == ""


def test_a_choice_that_is_no_option_name_is_refused_before_any_io(tmp_path: Path) -> None:
    """`approvals approve --choice` is checked first: no database, no Temporal needed."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AUTOBIZ_HOME": str(tmp_path),
        "AUTOBIZ_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autobiz.cli.main",
            "approvals",
            "approve",
            "r1",
            "--as",
            "ana",
            "--choice",
            "Bad Choice",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error[INPUT_INVALID]: --choice 'Bad Choice'")
    assert "Traceback" not in done.stderr
