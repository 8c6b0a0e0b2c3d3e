"""Webhook signature verifiers: pure functions over the raw body, the header and secrets.

No I/O, no global clock (``now`` is passed in), comparisons through
``hmac.compare_digest``. Each verifier answers a ``Verification``: which of the given
secrets verified, or why none did. The reason is for logs and metrics only; the HTTP
answer to a failure never says which check failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Failure(StrEnum):
    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    NO_V1_SIGNATURE = "no_v1_signature"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    MISMATCH = "mismatch"
    NO_SECRET = "no_secret"  # noqa: S105 (a reason code, not a secret)


@dataclass(frozen=True)
class Verification:
    ok: bool
    secret_index: int | None = None  # which of the secrets verified
    failure: Failure | None = None

    @classmethod
    def valid(cls, index: int) -> Verification:
        return cls(ok=True, secret_index=index)

    @classmethod
    def invalid(cls, failure: Failure) -> Verification:
        return cls(ok=False, failure=failure)


def _hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


# -- Stripe ---------------------------------------------------------------------------

MAX_STRIPE_SIGNATURES = 8  # a header with more v1 entries than this is refused


def parse_stripe_header(header: str) -> tuple[int, list[str]] | None:
    """``t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`` → (timestamp, v1 signatures)."""
    timestamp: int | None = None
    v1: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            bad = not (value.isascii() and value.isdigit() and len(value) <= 12)
            if timestamp is not None or bad:
                return None
            timestamp = int(value)
        elif key == "v1":
            v1.append(value)
    if timestamp is None or len(v1) > MAX_STRIPE_SIGNATURES:
        return None
    return timestamp, v1


def verify_stripe(
    payload: bytes,
    header: str | None,
    secrets: Sequence[bytes],
    *,
    now: float,
    tolerance_seconds: int = 300,
) -> Verification:
    """Stripe: HMAC-SHA256(secret, f"{t}.{payload}") in hex, as one of the ``v1`` values.

    ``t`` must be within ``tolerance_seconds`` of ``now`` in both directions (Stripe's own
    libraries only refuse old timestamps; a future one is as suspicious). ``v0`` (the old
    scheme) never counts.
    """
    if not secrets:
        return Verification.invalid(Failure.NO_SECRET)
    if not header:
        return Verification.invalid(Failure.MISSING_HEADER)
    parsed = parse_stripe_header(header)
    if parsed is None:
        return Verification.invalid(Failure.MALFORMED_HEADER)
    timestamp, candidates = parsed
    if not candidates:
        return Verification.invalid(Failure.NO_V1_SIGNATURE)
    if abs(now - timestamp) > tolerance_seconds:
        return Verification.invalid(Failure.TIMESTAMP_OUT_OF_WINDOW)
    signed = str(timestamp).encode() + b"." + payload
    for index, secret in enumerate(secrets):
        expected = _hmac_sha256(secret, signed).hex().encode()
        # Compare against every candidate: no early exit on the attacker's order.
        matched = False
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
        if matched:
            return Verification.valid(index)
    return Verification.invalid(Failure.MISMATCH)


# -- Shopify --------------------------------------------------------------------------


def verify_shopify(payload: bytes, header: str | None, secrets: Sequence[bytes]) -> Verification:
    """Shopify: base64(HMAC-SHA256(secret, body)) in ``X-Shopify-Hmac-Sha256``.

    Several secrets are tried in order (current, then previous during a rotation). The
    header is decoded strictly as base64 and the raw digests compared, so a hex digest
    (which decodes to 48 bytes, not 32) never matches.
    """
    if not secrets:
        return Verification.invalid(Failure.NO_SECRET)
    if not header:
        return Verification.invalid(Failure.MISSING_HEADER)
    try:
        given = base64.b64decode(header.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return Verification.invalid(Failure.MALFORMED_HEADER)
    if len(given) != hashlib.sha256().digest_size:
        return Verification.invalid(Failure.MALFORMED_HEADER)
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(_hmac_sha256(secret, payload), given):
            return Verification.valid(index)
    return Verification.invalid(Failure.MISMATCH)


# -- Printful -------------------------------------------------------------------------


HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def printful_hmac_key(secret: bytes) -> bytes:
    """The HMAC key of a Printful v2 ``secret_key``: its hex-decoded bytes.

    Why hex-decoded, not the text: Printful's v2 documentation (the "Event signing"
    section of its OpenAPI, ``shared/reference/fidelity/printful-v2-openapi.2025-02.json``)
    says only that the configuration's secret key "is used to generate and verify the
    event signature" with HMAC-SHA256, and that ``x-pf-webhook-signature`` holds "the
    hexadecimal representation of the signature"; it does not say how the key is encoded.
    What it does show: ``secret_key`` (``WebhookCreated``) is issued as a 128-character
    lowercase hex string, i.e. 64 random bytes, exactly HMAC-SHA256's block size, which is
    how a key is generated and then shown in hex. Integrations that verify real Printful
    deliveries decode it the same way (the key "is itself hex-encoded and must be decoded
    to raw bytes"). So a secret that is hex (an even number of hex digits) is decoded; one
    that is not (an older or hand-made secret, the test suite's ``pf``) cannot be a v2
    ``secret_key`` and is used as its bytes. The text of a hex secret is *not* also tried:
    one key per secret, so there is one scheme to get right, checked against a delivery.
    The sandbox (``sandbox.webhooks.printful_signature``) signs with the same rule.
    """
    candidate = secret.strip()
    if candidate and len(candidate) % 2 == 0 and all(c in HEX_DIGITS for c in candidate):
        return bytes.fromhex(candidate.decode("ascii"))
    return secret


def verify_printful(payload: bytes, header: str | None, secrets: Sequence[bytes]) -> Verification:
    """Printful v2: hex(HMAC-SHA256(key, raw body)) in ``x-pf-webhook-signature``, where the
    key is :func:`printful_hmac_key` of the secret.

    The header is compared case-insensitively as hex text, in constant time (the digest
    is computed over the raw bytes as received, never a re-serialised body). Several
    secrets are tried in order (current, then previous during a rotation).
    """
    if not secrets:
        return Verification.invalid(Failure.NO_SECRET)
    if not header:
        return Verification.invalid(Failure.MISSING_HEADER)
    given = header.strip().lower().encode("ascii", "replace")
    for index, secret in enumerate(secrets):
        expected = _hmac_sha256(printful_hmac_key(secret), payload).hex().encode()
        if hmac.compare_digest(expected, given):
            return Verification.valid(index)
    return Verification.invalid(Failure.MISMATCH)


# -- SendGrid Inbound Parse -----------------------------------------------------------
# Inbound Parse signs nothing; SendGrid posts to the URL as configured, and a URL with
# ``user:password@`` in it is sent as HTTP Basic. The credential is the secret.

MAX_BASIC_HEADER = 1024


def basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """``Basic base64(user:password)`` → (user, the raw ``user:password`` bytes)."""
    if not header or len(header) > MAX_BASIC_HEADER:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, _ = raw.partition(b":")
    if not sep or not user:
        return None
    try:
        return user.decode("utf-8"), raw
    except UnicodeDecodeError:
        return None


def verify_basic(header: str | None, secrets: Sequence[bytes]) -> Verification:
    """The ``Authorization: Basic`` credential equals one of ``secrets`` (each the raw
    ``user:password``), compared in constant time against every one of them."""
    if header is None:
        return Verification.invalid(Failure.MISSING_HEADER)
    parsed = basic_credentials(header)
    if parsed is None:
        return Verification.invalid(Failure.MALFORMED_HEADER)
    _, given = parsed
    found: int | None = None
    for index, secret in enumerate(secrets):
        # Every secret is compared (no early exit), so the time says nothing of which.
        if hmac.compare_digest(given, secret) and found is None:
            found = index
    return (
        Verification.valid(found) if found is not None else Verification.invalid(Failure.MISMATCH)
    )
