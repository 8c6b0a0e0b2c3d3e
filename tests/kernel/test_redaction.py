"""The scanner masks every corpus secret, leaves look-alikes alone, and allowlists."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.redaction import (
    RedactingLogFilter,
    allowlisted,
    find_leaks,
    luhn_valid,
    redact_detail,
    redact_text,
    redact_value,
)
from tests.kernel.corpus import NOT_SECRETS, SECRETS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_is_masked_alone_and_in_context(name: str) -> None:
    secret = SECRETS[name]
    for text in (secret, f"value={secret};", f"Authorization: {secret}\n", f'{{"k": "{secret}"}}'):
        out = redact_text(text)
        assert secret not in out, (name, out)
        assert "[REDACTED:" in out


def test_long_live_keys_are_masked_whole() -> None:
    for name in ("stripe_secret_live_long", "stripe_restricted_live_long"):
        secret = SECRETS[name]
        assert len(secret) >= 99
        out = redact_text(f"key {secret} end")
        assert out == "key [REDACTED:stripe_key] end"
        # No tail of the key survives either.
        assert secret[-20:] not in out


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "uuid_text",
    [
        # Digit-only UUID groups whose digits pass Luhn (seen in a real history's ids).
        "tq-9f3a41365-7828-4208-8841-97b3c0d1e2f4",
        '"41365782-8420-8884-1970-aa11bb22cc33"',
    ],
)
def test_dashed_ids_are_not_card_numbers(uuid_text: str) -> None:
    assert find_leaks(uuid_text) == []
    assert redact_text(uuid_text) == uuid_text


def test_luhn() -> None:
    assert luhn_valid("4242424242424242")
    assert not luhn_valid("4242424242424241")
    assert not luhn_valid("1234567812345678")
    assert not luhn_valid("12345")


def test_zero_leaks_over_the_whole_corpus_in_one_blob() -> None:
    blob = json.dumps(
        {"nested": [{"k": v} for v in SECRETS.values()], "text": " ".join(SECRETS.values())}
    )
    out = json.dumps(redact_value(json.loads(blob)))
    leaked = [name for name, secret in SECRETS.items() if secret in out]
    assert leaked == []
    assert find_leaks(out) == []


def test_card_number_as_integer_is_masked() -> None:
    assert redact_value({"n": 4242424242424242}) == {"n": "[REDACTED:card_number]"}
    assert redact_value({"n": 1234567812345678}) == {"n": 1234567812345678}
    assert redact_value({"amount_minor": 5000, "ok": True}) == {"amount_minor": 5000, "ok": True}


def test_allowlist_keeps_only_named_fields() -> None:
    out = allowlisted(
        {"order_id": "1001", "email": "a@b.co", "card": "4242424242424242"}, {"order_id"}
    )
    assert out == {"order_id": "1001", "_dropped_fields": 2}


def test_detail_allowlist_drops_unknown_keys_and_redacts_kept_ones() -> None:
    out = redact_detail({"message": f"failed for {SECRETS['email']}", "customer_card": "x"})
    assert out["message"] == "failed for [REDACTED:email]"
    assert "customer_card" not in out


def test_log_filter_masks_messages_and_args(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redaction")
    flt = RedactingLogFilter()
    logger.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="tests.redaction"):
            logger.info(
                "charging %s with %s", SECRETS["visa_spaced"], SECRETS["stripe_secret_live_long"]
            )
            try:
                raise RuntimeError(f"boom {SECRETS['sendgrid_key']}")
            except RuntimeError:
                logger.exception("failed for %s", SECRETS["email"])
    finally:
        logger.removeFilter(flt)
    text = caplog.text
    for secret in SECRETS.values():
        assert secret not in text


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@pytest.mark.parametrize(
    "card",
    [
        "4222222222222",  # Visa, 13 digits
        "30569309025904",  # Diners, 14
        "378282246310005",  # Amex, 15
        "4242424242424242",  # Visa, 16
        "6011111111111117",  # Discover, 16
        "3566002020360505",  # JCB, 16
        "6200000000000005",  # UnionPay, 16
        "2223003122003222",  # Mastercard 2-series, 16
        "4000002500001001",  # Visa, 16
        "6703444444444449",  # Maestro, 16
    ],
)
def test_test_cards_of_every_length_are_masked(card: str) -> None:
    assert card not in redact_text(f"charged {card} ok")
    assert redact_value(int(card)) == "[REDACTED:card_number]"


@pytest.mark.parametrize("order_id", ["5096163869004", "5096161342004", "50961613420001"])
def test_luhn_valid_shopify_order_ids_are_kept(order_id: str) -> None:
    """Shopify's 13-digit order ids start with 5: no network issues 13-digit cards there."""
    assert luhn_valid(order_id)
    text = f"order {order_id} paid"
    assert redact_text(text) == text and find_leaks(text) == []
    assert redact_value(int(order_id)) == int(order_id)
