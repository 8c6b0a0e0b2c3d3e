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


def verify_printful(payload: bytes, header: str | None, secrets: Sequence[bytes]) -> Verification:
    """Printful v2: hex(HMAC-SHA256(secret, body)) in ``x-pf-webhook-signature``.

    Kept in this one function so the scheme can be refined in one place.
    """
    if not secrets:
        return Verification.invalid(Failure.NO_SECRET)
    if not header:
        return Verification.invalid(Failure.MISSING_HEADER)
    given = header.strip().lower().encode("ascii", "replace")
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(_hmac_sha256(secret, payload).hex().encode(), given):
            return Verification.valid(index)
    return Verification.invalid(Failure.MISMATCH)
