"""The verifiers as pure functions: clock injected, signatures computed with hmac here."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from ingress.signatures import (
    Failure,
    parse_stripe_header,
    printful_hmac_key,
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


# A v2 secret_key as Printful issues it (WebhookCreated): 128 hex digits.
PF_SECRET = "a01376f30766acf7f706cc84beb57b79f9779e4a3e79d5519b3a9069c2156807" * 2


def test_printful_v2_secret_key_is_hex_decoded() -> None:
    key = bytes.fromhex(PF_SECRET)
    assert printful_hmac_key(PF_SECRET.encode()) == key and len(key) == 64
    as_printful_signs = hmac.new(key, BODY, hashlib.sha256).hexdigest()
    assert verify_printful(BODY, as_printful_signs, [PF_SECRET.encode()]).ok
    # The secret's text as the key is not the scheme, and is refused.
    as_text = hmac.new(PF_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert verify_printful(BODY, as_text, [PF_SECRET.encode()]).failure is Failure.MISMATCH


def test_printful_signature_is_of_the_raw_body() -> None:
    header = printful_header(BODY, PF_SECRET)
    reformatted = json.dumps(json.loads(BODY), indent=2).encode()
    assert verify_printful(BODY, header, [PF_SECRET.encode()]).ok
    assert not verify_printful(reformatted, header, [PF_SECRET.encode()]).ok
    rotated = verify_printful(BODY, header, [b"0" * 128, PF_SECRET.encode()])
    assert rotated.ok and rotated.secret_index == 1


def test_a_secret_that_is_not_hex_is_used_as_text() -> None:
    assert printful_hmac_key(b"pfwh_text") == b"pfwh_text"
    assert printful_hmac_key(b"abc") == b"abc"  # odd length: not hex


def test_sandbox_signs_printful_webhooks_the_same_way() -> None:
    from sandbox.webhooks import printful_signature

    for secret in (PF_SECRET, "pfwh_text"):
        assert verify_printful(BODY, printful_signature(secret, BODY), [secret.encode()]).ok
        assert printful_signature(secret, BODY) == printful_header(BODY, secret)


def test_no_secret_never_verifies() -> None:
    assert not verify_stripe(BODY, stripe_header(BODY, "", t=NOW), [], now=NOW).ok
    assert not verify_shopify(BODY, shopify_header(BODY, ""), []).ok
    assert not verify_printful(BODY, printful_header(BODY, ""), []).ok
