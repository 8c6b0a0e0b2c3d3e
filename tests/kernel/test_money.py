"""One ISO 4217 table (Babel's), one parser, shared by the CLI and the activities
(issue 10: the two hand tables disagreed, and ``\\d`` took other scripts' digits)."""

from __future__ import annotations

from decimal import Decimal

import pytest

import activities.money
from autobiz.cli import flow_runtime
from autobiz.errors import AutobizError
from kernel import money
from kernel.money import MINOR_DIGITS, MoneyError, format_money, parse_amount, parse_currency

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "digits"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
    ],
)
def test_minor_digits_come_from_babel(code: str, digits: int) -> None:
    assert money.minor_digits(code) == digits
    assert money.minor_digits(code.lower()) == digits


def test_the_cli_and_the_activities_use_the_same_table() -> None:
    """For every known currency, "1" typed at the CLI and 1 read from a provider are the
    same number of minor units (KWD was 1000 at the CLI and 100 in the activities)."""
    assert len(MINOR_DIGITS) > 150
    for code in MINOR_DIGITS:
        assert flow_runtime.parse_amount("1", code) == activities.money.to_minor(
            Decimal(1), code
        ), code
        assert activities.money.from_minor(10 ** MINOR_DIGITS[code], code) == 1


@pytest.mark.parametrize("text", ["ZZZ", "XYZ", "ABC"])
def test_unknown_codes_are_refused_not_defaulted(text: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_currency(text)
    assert refused.value.code == "CURRENCY_UNKNOWN"
    with pytest.raises(AutobizError) as cli:
        flow_runtime.parse_currency(text)
    assert cli.value.code == "CURRENCY_UNKNOWN" and cli.value.hint
    with pytest.raises(MoneyError):
        activities.money.to_minor(Decimal(1), text)


@pytest.mark.parametrize("text", ["US", "USDX", " USD", "USD ", "\uff35\uff33\uff24", "U$D", ""])
def test_malformed_codes_are_invalid(text: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_currency(text)
    assert refused.value.code == "CURRENCY_INVALID"


@pytest.mark.parametrize(
    "text",
    [
        "\u0665\u0660",  # Arabic-Indic 50
        "\u06f5",  # Extended Arabic-Indic 5
        "\uff15",  # full-width 5
        "\uff15.\uff10\uff10",
        "\u0967\u0968",  # Devanagari 12
        " 5 ",
        " 5",
        "5 ",
        "\t5",
        "5\n",
        "\u00a05",  # padding
        "5.",
        ".5",
        "5..0",
        "5.0.0",
        "+5",
        "-5",
        "5e2",
        "1_000",
        "1,000",
        "0x10",
        "\uff15\uff10",
    ],
)
def test_only_ascii_digits_and_one_dot(text: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_amount(text, "USD")
    assert refused.value.code == "AMOUNT_INVALID"
    assert refused.value.hint and "ASCII digits" in refused.value.hint


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("5", "USD", 500),
        ("5.5", "USD", 550),
        ("5.05", "USD", 505),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
        ("1.2", "BHD", 1200),
        ("007.10", "EUR", 710),
    ],
)
def test_plain_amounts(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"), [("5.0", "JPY"), ("1.2345", "KWD"), ("0.001", "USD")]
)
def test_at_most_the_currencys_minor_digits(text: str, currency: str) -> None:
    with pytest.raises(MoneyError) as refused:
        parse_amount(text, currency)
    assert "decimals" in refused.value.message


def test_formatting_follows_the_same_table() -> None:
    assert format_money(1234, "KWD") == "1.234 KWD"
    assert format_money(1234, "usd") == "12.34 USD"
    assert format_money(1234, "JPY") == "1234 JPY"
    assert format_money(1234, "ZZZ") == "1234 ZZZ (minor units)"
    assert flow_runtime.format_money is format_money
