"""The verifiers as pure functions: clock injected, signatures computed with hmac here."""

from __future__ import annotations

import pytest

from ingress.signatures import (
    Failure,
    parse_stripe_header,
    verify_printful,
    verify_shopify,
    verify_stripe,
)
from tests.ingress.support import printful_header, shopify_header, stripe_header

pytestmark = pytest.mark.unit

BODY = b'{"id":"evt_1","type":"charge.refunded"}'
NOW = 1_800_000_000
S1, S2 = b"whsec_one", b"whsec_two"


def test_stripe_valid_and_secret_index() -> None:
    header = stripe_header(BODY, "whsec_two", t=NOW)
    result = verify_stripe(BODY, header, [S1, S2], now=NOW)
    assert result.ok and result.secret_index == 1


@pytest.mark.parametrize(
    ("offset", "ok"), [(-300, True), (300, True), (-301, False), (3600, False)]
)
def test_stripe_window_both_directions(offset: int, ok: bool) -> None:
    header = stripe_header(BODY, "whsec_one", t=NOW + offset)
    result = verify_stripe(BODY, header, [S1], now=NOW, tolerance_seconds=300)
    assert result.ok is ok
    if not ok:
        assert result.failure is Failure.TIMESTAMP_OUT_OF_WINDOW


def test_stripe_only_v0_fails() -> None:
    header = stripe_header(BODY, "whsec_one", t=NOW, scheme="v0")
    assert verify_stripe(BODY, header, [S1], now=NOW).failure is Failure.NO_V1_SIGNATURE


def test_stripe_two_v1_one_valid_in_either_order() -> None:
    good = stripe_header(BODY, "whsec_one", t=NOW).split(",")[1]
    bad = "v1=" + "0" * 64
    for parts in ([bad, good], [good, bad]):
        assert verify_stripe(BODY, f"t={NOW}," + ",".join(parts), [S1], now=NOW).ok


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", "v1=00", "t=1,t=2,v1=00", "t=١٢٣,v1=00", "t=" + "9" * 5000],
)
def test_stripe_malformed_headers_fail_cleanly(header: str) -> None:
    assert not verify_stripe(BODY, header, [S1], now=NOW).ok


def test_stripe_header_parser() -> None:
    assert parse_stripe_header("t=5,v1=aa,v0=bb,v1=cc") == (5, ["aa", "cc"])
    assert parse_stripe_header("t=5," + ",".join(["v1=aa"] * 9)) is None


def test_stripe_tampered_body_fails() -> None:
    header = stripe_header(BODY, "whsec_one", t=NOW)
    assert verify_stripe(BODY + b" ", header, [S1], now=NOW).failure is Failure.MISMATCH


def test_shopify_rotation_and_hex_rejected() -> None:
    assert verify_shopify(BODY, shopify_header(BODY, "one"), [b"one", b"two"]).secret_index == 0
    assert verify_shopify(BODY, shopify_header(BODY, "two"), [b"one", b"two"]).secret_index == 1
    assert not verify_shopify(BODY, shopify_header(BODY, "three"), [b"one", b"two"]).ok
    hex_digest = printful_header(BODY, "one")  # same HMAC, hex-encoded
    assert verify_shopify(BODY, hex_digest, [b"one"]).failure is Failure.MALFORMED_HEADER
    assert verify_shopify(BODY, "not base64!", [b"one"]).failure is Failure.MALFORMED_HEADER
    assert verify_shopify(BODY, None, [b"one"]).failure is Failure.MISSING_HEADER


def test_printful() -> None:
    assert verify_printful(BODY, printful_header(BODY, "pf"), [b"pf"]).ok
    assert verify_printful(BODY, printful_header(BODY, "pf").upper(), [b"pf"]).ok
    assert verify_printful(BODY, None, [b"pf"]).failure is Failure.MISSING_HEADER
    assert (
        verify_printful(BODY, printful_header(BODY, "other"), [b"pf"]).failure is Failure.MISMATCH
    )


def test_no_secret_never_verifies() -> None:
    assert not verify_stripe(BODY, stripe_header(BODY, "", t=NOW), [], now=NOW).ok
    assert not verify_shopify(BODY, shopify_header(BODY, ""), []).ok
    assert not verify_printful(BODY, printful_header(BODY, ""), []).ok
