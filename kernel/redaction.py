"""Redaction (P1-R25): allowlisted trace fields plus a scanner for secrets and PII.

The scanner masks, in any text: Stripe keys (``sk_``/``rk_``/``pk_`` live and test, any
length), webhook secrets (``whsec_``), Shopify tokens (``shpat_``/``shpss_``/``shpca_``/
``shppa_``), SendGrid keys (``SG.x.y``), JWTs, bearer tokens, Luhn-valid card numbers
(plain, spaced or dashed), emails and phone numbers. A number that fails the Luhn check
(an order number) is left alone. Pure and deterministic: safe inside workflows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "[REDACTED:{kind}]"

_NOT_WORD_BEFORE = r"(?<![A-Za-z0-9])"

_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("stripe_key", re.compile(_NOT_WORD_BEFORE + r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{4,}")),
    ("stripe_webhook_secret", re.compile(_NOT_WORD_BEFORE + r"whsec_[A-Za-z0-9_+/=-]{4,}")),
    ("shopify_token", re.compile(_NOT_WORD_BEFORE + r"shp(?:at|ss|ca|pa)_[A-Za-z0-9_]{4,}")),
    # OpenAI-style keys (sk-…, sk-proj-…) of the LLM provider.
    ("llm_api_key", re.compile(_NOT_WORD_BEFORE + r"sk-(?:proj-)?[A-Za-z0-9_-]{16,}")),
    ("sendgrid_key", re.compile(_NOT_WORD_BEFORE + r"SG\.[A-Za-z0-9_-]{3,}\.[A-Za-z0-9_-]{3,}")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")),
    ("bearer_token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/-]{16,}=*")),
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
]

# 13-19 digits, optionally grouped by single spaces or dashes, standing alone: not part
# of a longer word or dashed id (a UUID's digit-only groups would otherwise pass Luhn
# one time in ten).
_CARD_CANDIDATE = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?!-?\w)")
# +E.164; +CC and groups (+44 20 7946 0958); NANP (415) 555-2671 / 415-555-2671 / 415.555.2671.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{7,15}"
    r"|\+\d{1,3}(?:[ .-]\(?\d{1,4}\)?){2,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}[ .-]\d{3}[ .-]\d{4}"
    r")(?![\w])"
)


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_number_like(digits: str) -> bool:
    """Luhn-valid, and of a length a card network issues with that leading digit: the
    13- and 14-digit lengths only Visa (4…) and Diners (30/36/38/39…) ever used, 15 only
    Amex (34/37) and the old JCB (1800/2131), 16-19 only networks starting 2-6. Shopify's
    13-digit order ids (5…) would otherwise be masked one time in ten in every message."""
    if not luhn_valid(digits):
        return False
    n = len(digits)
    if n == 13:
        return digits.startswith("4")
    if n == 14:
        return digits.startswith(("30", "36", "38", "39"))
    if n == 15:
        return digits.startswith(("34", "37", "1800", "2131"))
    return digits[0] in "23456"


def _mask_card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"[ -]", "", text)
    return MASK.format(kind="card_number") if card_number_like(digits) else text


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if not 9 <= len(digits) <= 15:
        return text
    # A bare run of digits is an id, not a phone number, unless it is +E.164.
    if text.isdigit():
        return text
    return MASK.format(kind="phone")


def redact_text(text: str) -> str:
    """Mask every secret and piece of PII the scanner knows in ``text``."""
    for kind, pattern in _SECRET_PATTERNS:
        text = pattern.sub(MASK.format(kind=kind), text)
    text = _CARD_CANDIDATE.sub(_mask_card, text)
    return _PHONE_CANDIDATE.sub(_mask_phone, text)


def find_leaks(text: str) -> list[str]:
    """What the scanner would mask (for alerts and tests)."""
    found: list[str] = []
    for _kind, pattern in _SECRET_PATTERNS:
        found.extend(m.group(0) for m in pattern.finditer(text))
    found.extend(
        m.group(0)
        for m in _CARD_CANDIDATE.finditer(text)
        if card_number_like(re.sub(r"[ -]", "", m.group(0)))
    )
    return found


def redact_value(value: Any) -> Any:
    """Redact every string (and card-like integer) inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return MASK.format(kind="card_number") if card_number_like(str(abs(value))) else value
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact_text(str(value))


def allowlisted(data: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Keep only allowlisted top-level fields, redacted; count what was dropped."""
    allow = set(allowed)
    kept = {k: redact_value(v) for k, v in data.items() if k in allow}
    dropped = len([k for k in data if k not in allow])
    if dropped:
        kept["_dropped_fields"] = dropped
    return kept


# Keys a trace entry's ``detail`` may carry; anything else is dropped before storing.
TRACE_DETAIL_FIELDS: frozenset[str] = frozenset(
    {
        "code",
        "message",
        "reason",
        "bound",
        "limit",
        "observed",
        "principal",
        "tenant",
        "tool",
        "action",
        "side_effect",
        "missing_scopes",
        "errors",
        "step",
        "internal_key",
        "external_key",
        "fingerprint",
        "input",
        "output",
        "approver",
        "role",
        "request_id",
        "hitl",
        "condition",
        "from_state",
        "to_state",
        "state",
        "model",
        "input_tokens",
        "output_tokens",
        "tokens",
        "cost_micros",
        "attempt",
        "error_type",
        "pattern",
        "repeats",
        "duration_ms",
        "note",
        "diagnosis",  # WF06's structured triage (cause, evidence, alternatives; no PII)
        "_dropped_fields",
    }
)


def redact_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    return allowlisted(detail, TRACE_DETAIL_FIELDS)


class RedactingLogFilter(logging.Filter):
    """A logging filter that masks secrets and PII in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingLogFilter:
    """Attach the filter to every handler of ``logger`` (root by default)."""
    target = logger or logging.getLogger()
    flt = RedactingLogFilter()
    for handler in target.handlers:
        handler.addFilter(flt)
    target.addFilter(flt)
    return flt


Redactor = Callable[[str], str]
