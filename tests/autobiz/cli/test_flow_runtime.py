"""The CLI's pure helpers: money parsing, durations, the decision's update id."""

from __future__ import annotations

from datetime import timedelta

import pytest

from autobiz.cli.approvals_cmd import update_id
from autobiz.cli.flow_runtime import (
    failure_of,
    format_duration,
    format_money,
    parse_amount,
    parse_currency,
)
from autobiz.errors import AutobizError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("12", "USD", 1200),
        ("0.01", "USD", 1),
        ("60.00", "EUR", 6000),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
        ("999999.99", "USD", 99_999_999),
    ],
)
def test_amounts_become_minor_units(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.345", "USD"),  # below a cent
        ("12.5", "JPY"),  # JPY has no minor unit
        ("0", "USD"),
        ("0.00", "USD"),
        ("-1", "USD"),
        ("abc", "USD"),
        ("", "USD"),
        ("12,50", "USD"),
        ("1e3", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("1000000.00", "USD"),  # above Stripe's largest amount
        (" 5 ", "USD"),  # padding (issue 10)
        ("\u0665\u0660", "USD"),  # Arabic-Indic 50 (issue 10)
        ("\uff15", "USD"),  # full-width 5 (issue 10)
        ("12.500", "USD"),  # more decimals than USD has, even if zeros
    ],
)
def test_bad_amounts_are_refused_with_a_code(text: str, currency: str) -> None:
    with pytest.raises(AutobizError) as refused:
        parse_amount(text, currency)
    assert refused.value.code == "AMOUNT_INVALID"


def test_currency_codes() -> None:
    assert parse_currency("usd") == "USD"
    for bad in ("US", "dollars", "U$D", ""):
        with pytest.raises(AutobizError) as refused:
            parse_currency(bad)
        assert refused.value.code == "CURRENCY_INVALID"


def test_money_and_durations_for_people() -> None:
    assert format_money(6000, "USD") == "60.00 USD"
    assert format_money(500, "JPY") == "500 JPY"
    assert format_money(None, None) == "-"
    assert format_duration(timedelta(hours=23, minutes=59, seconds=5)) == "23h 59m"
    assert format_duration(timedelta(days=2, hours=1)) == "2d 1h"
    assert format_duration(timedelta(seconds=7)) == "7s"
    assert format_duration(timedelta(seconds=-3)) == "0s"


def test_update_id_is_stable_per_decision() -> None:
    one = update_id("demo-shop", "refund:demo-shop:r1#refund#1", "ana", True)
    assert one == update_id("demo-shop", "refund:demo-shop:r1#refund#1", "ana", True)
    others = {
        update_id("demo-shop", "refund:demo-shop:r1#refund#1", "ana", False),
        update_id("demo-shop", "refund:demo-shop:r1#refund#1", "omar", True),
        update_id("demo-shop", "refund:demo-shop:r2#refund#1", "ana", True),
        update_id("other-shop", "refund:demo-shop:r1#refund#1", "ana", True),
    }
    assert one not in others and len(others) == 4


def test_failure_of_names_the_application_error() -> None:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError, TerminatedError

    expired = ApplicationError("approval r-1 expired: failed closed", type="APPROVAL_EXPIRED")
    assert failure_of(WorkflowFailureError(cause=expired)) == (
        "APPROVAL_EXPIRED",
        "approval r-1 expired: failed closed",
    )
    provider = ApplicationError(
        "[PROVIDER_NOT_FOUND] no such payment_intent", type="PROVIDER_NOT_FOUND"
    )
    assert failure_of(WorkflowFailureError(cause=provider))[1] == "no such payment_intent"
    terminated = TerminatedError("by operator", ())
    assert failure_of(WorkflowFailureError(cause=terminated)) == ("TerminatedError", "by operator")
