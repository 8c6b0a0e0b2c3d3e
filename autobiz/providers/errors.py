"""What can go wrong when we talk to a provider, in a form a retry policy can act on.

Every client maps its failures onto this hierarchy. The one question an activity asks is
``retryable``: Temporal retries the retryable ones (the client itself never retries) and
fails fast on the rest. ``RateLimited.retry_after`` lets the activity ask Temporal for a
matching delay.
"""

from __future__ import annotations

from autobiz.errors import AutobizError
from kernel.codes import ErrorCode

# Stripe decline codes that will never succeed on a retry with the same card.
HARD_DECLINE_CODES = frozenset(
    {
        "lost_card",
        "stolen_card",
        "pickup_card",
        "fraudulent",
        "expired_card",
        "incorrect_number",
        "invalid_account",
        "restricted_card",
        "security_violation",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "stop_payment_order",
        "transaction_not_allowed",
        "card_not_supported",
        "currency_not_supported",
        "new_account_information_available",
    }
)


def is_hard_decline(decline_code: str | None) -> bool:
    """Hard declines need a new payment method; soft ones may succeed later (dunning)."""
    return decline_code in HARD_DECLINE_CODES


class ProviderError(AutobizError):
    """A provider call failed. ``provider_code`` is the provider's own error code."""

    code = ErrorCode.PROVIDER_ERROR
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        provider_code: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.provider_code = provider_code
        self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        status = f" http={self.http_status}" if self.http_status is not None else ""
        pcode = f" {self.provider_code}" if self.provider_code else ""
        return f"[{self.code}] {self.provider}{pcode}{status}: {self.message}"


class CardDeclined(ProviderError):
    """The card was declined. Never retried by Temporal: a soft decline is a dunning
    decision for the workflow, not a transport retry."""

    code = ErrorCode.CARD_DECLINED
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "stripe",
        provider_code: str | None = "card_declined",
        decline_code: str | None = None,
        http_status: int | None = 402,
        payment_intent_id: str | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, provider_code=provider_code, http_status=http_status
        )
        self.decline_code = decline_code or provider_code
        self.hard = is_hard_decline(self.decline_code)
        self.payment_intent_id = payment_intent_id


class RateLimited(ProviderError):
    code = ErrorCode.PROVIDER_RATE_LIMITED
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        provider_code: str | None = "rate_limited",
        http_status: int | None = 429,
    ) -> None:
        super().__init__(
            message, provider=provider, provider_code=provider_code, http_status=http_status
        )
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """5xx, connection failure or timeout: the outcome is unknown, retry with the same key."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    retryable = True


class IdempotencyConflict(ProviderError):
    """The idempotency key was reused. With different parameters it is a bug (never
    retried); while the first request is still in flight it is retryable."""

    code = ErrorCode.IDEMPOTENCY_CONFLICT
    retryable = False


class InvalidRequest(ProviderError):
    code = ErrorCode.PROVIDER_INVALID_REQUEST
    retryable = False


class StateConflict(InvalidRequest):
    """The object is in a state that forbids the operation (capture a canceled
    PaymentIntent, cancel a Printful order already in production)."""

    code = ErrorCode.PROVIDER_STATE_CONFLICT


class NotFound(ProviderError):
    code = ErrorCode.PROVIDER_NOT_FOUND
    retryable = False


class AuthenticationFailed(ProviderError):
    code = ErrorCode.PROVIDER_AUTH_FAILED
    retryable = False


class HygieneViolation(ProviderError):
    """Refused before any byte left the process: live key, host or recipient not allowed."""

    code = ErrorCode.HYGIENE_VIOLATION
    retryable = False
