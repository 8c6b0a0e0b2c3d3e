"""Authenticate a request: which candidate tenant's secret verifies the signature (or,
for SendGrid Inbound Parse, which unsigned, equals the Basic credential).

Pure (no I/O, the time is given): the candidates come from a ``WebhookSecrets``
resolver, the signature schemes from ``ingress.signatures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingress.signatures import (
    Failure,
    Verification,
    verify_basic,
    verify_printful,
    verify_shopify,
    verify_stripe,
)
from ingress.tenants import Source, TenantSecrets

SIGNATURE_HEADERS: Mapping[Source, str] = {
    Source.STRIPE: "stripe-signature",
    Source.SHOPIFY: "x-shopify-hmac-sha256",
    Source.PRINTFUL: "x-pf-webhook-signature",
    # Inbound Parse signs nothing: the parse URL's Basic credentials authenticate it.
    Source.SENDGRID: "authorization",
}


def verify(
    source: Source,
    body: bytes,
    header: str | None,
    secrets: Sequence[bytes],
    *,
    now: float,
    stripe_tolerance_seconds: int,
) -> Verification:
    if source is Source.STRIPE:
        return verify_stripe(
            body, header, secrets, now=now, tolerance_seconds=stripe_tolerance_seconds
        )
    if source is Source.SHOPIFY:
        return verify_shopify(body, header, secrets)
    if source is Source.SENDGRID:
        return verify_basic(header, secrets)
    return verify_printful(body, header, secrets)


@dataclass(frozen=True)
class Authentication:
    tenant_id: str | None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.tenant_id is not None


# Failures that no other secret can cure: stop trying candidates.
_FINAL = {
    Failure.MISSING_HEADER,
    Failure.MALFORMED_HEADER,
    Failure.NO_V1_SIGNATURE,
    Failure.TIMESTAMP_OUT_OF_WINDOW,
}


def authenticate(
    source: Source,
    body: bytes,
    headers: Mapping[str, str],
    candidates: Sequence[TenantSecrets],
    *,
    now: float,
    stripe_tolerance_seconds: int = 300,
) -> Authentication:
    """The tenant whose secret verified, or the reason none did."""
    header = headers.get(SIGNATURE_HEADERS[source])
    failure = Failure.NO_SECRET
    for candidate in candidates:
        result = verify(
            source,
            body,
            header,
            candidate.raw(),
            now=now,
            stripe_tolerance_seconds=stripe_tolerance_seconds,
        )
        if result.ok:
            return Authentication(candidate.tenant_id)
        failure = result.failure or Failure.MISMATCH
        if failure in _FINAL:
            break
    return Authentication(None, failure)
