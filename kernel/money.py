"""Money at the edges: ISO 4217 codes, their minor digits, amounts typed by people.

One table, from a maintained library (Babel's CLDR data) rather than a hand list: the
codes Babel knows and each one's minor digits (JPY 0, USD 2, KWD/BHD 3). The CLI and the
activities both use it, so a refund typed at the CLI and an order total read from Shopify
agree on what ``12.50`` means.

Pure (no I/O after import; Babel reads its data file once, here). A workflow that needs
it imports it through ``workflow.unsafe.imports_passed_through()`` so the sandbox does not
re-load the data on every run.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies

from kernel.codes import ErrorCode

# code -> minor digits, for every currency code Babel knows (list_currencies() with no
# locale is the whole CLDR set; a code outside it is refused, never defaulted to 2).
MINOR_DIGITS: dict[str, int] = {code: get_currency_precision(code) for code in list_currencies()}
# Stripe's ceiling for one amount, in minor units.
MAX_AMOUNT_MINOR = 99_999_999

# ASCII only, on purpose: ``\d`` would also take Arabic-Indic (U+0660..) or full-width
# (U+FF10..) digits.
_AMOUNT_RE = re.compile(r"[0-9]{1,12}(?:\.([0-9]+))?", re.ASCII)
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}", re.ASCII)


class MoneyError(ValueError):
    """Input that is not money: a stable ``code`` (AMOUNT_INVALID, CURRENCY_INVALID,
    CURRENCY_UNKNOWN), a message, and a hint."""

    def __init__(self, code: ErrorCode, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def parse_currency(text: str) -> str:
    """``"usd"`` / ``"USD"`` → ``"USD"``; three ASCII letters Babel knows, nothing else."""
    if not _CURRENCY_RE.fullmatch(text):
        raise MoneyError(
            ErrorCode.CURRENCY_INVALID,
            f"currency {text!r} is not an ISO 4217 code",
            "use three letters, e.g. --currency USD",
        )
    code = text.upper()
    if code not in MINOR_DIGITS:
        raise MoneyError(
            ErrorCode.CURRENCY_UNKNOWN,
            f"currency {code} is not a known ISO 4217 code",
            "use an ISO 4217 code, e.g. USD, EUR, JPY",
        )
    return code


def minor_digits(currency: str) -> int:
    """The currency's number of minor digits (``MoneyError`` for an unknown code)."""
    return MINOR_DIGITS[parse_currency(currency)]


def amount_hint(currency: str) -> str:
    digits = MINOR_DIGITS.get(currency, 2)
    example = "12" if digits == 0 else "12." + "5" * digits
    return (
        f"a positive amount in {currency} with ASCII digits and at most {digits} "
        f"decimals, e.g. {example}"
    )


def parse_amount(text: str, currency: str) -> int:
    """``"12.50"`` in USD → 1250 minor units. Only ASCII digits with an optional single
    ``.`` and at most the currency's minor digits; no sign, exponent, separator, padding
    or other script's digits; above zero and at most :data:`MAX_AMOUNT_MINOR`."""
    digits = minor_digits(currency)
    hint = amount_hint(currency)
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise MoneyError(ErrorCode.AMOUNT_INVALID, f"amount {text!r} is not a plain number", hint)
    decimals = match.group(1)
    if decimals is not None and len(decimals) > digits:
        raise MoneyError(
            ErrorCode.AMOUNT_INVALID,
            f"amount {text!r} has more than {digits} decimals for {currency}",
            hint,
        )
    minor = int(Decimal(text).scaleb(digits))
    if minor <= 0:
        raise MoneyError(ErrorCode.AMOUNT_INVALID, f"amount {text!r} must be above zero", hint)
    if minor > MAX_AMOUNT_MINOR:
        raise MoneyError(
            ErrorCode.AMOUNT_INVALID,
            f"amount {text!r} is above the largest single amount ({MAX_AMOUNT_MINOR} minor units)",
            hint,
        )
    return minor


def to_minor(amount: Decimal, currency: str) -> int:
    """A provider's decimal amount → minor units (half-up, as the providers round)."""
    scaled = amount.scaleb(minor_digits(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def format_money(amount_minor: int | None, currency: str | None) -> str:
    """``1250, "USD"`` → ``"12.50 USD"``; an unknown or missing code shows minor units."""
    if amount_minor is None:
        return "-"
    code = (currency or "").upper()
    digits = MINOR_DIGITS.get(code)
    if digits is None:
        return f"{amount_minor} {code} (minor units)".replace("  ", " ")
    return f"{Decimal(amount_minor).scaleb(-digits):.{digits}f} {code}"
