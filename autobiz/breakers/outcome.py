"""What an activity's ending says about its provider's health.

The activity's error is already the ``ApplicationError`` its provider error was mapped
to (``activities.errors``), so its ``type`` is the stable code: a 5xx, a timeout or a
broken connection is ``PROVIDER_UNAVAILABLE`` (a failure), a 429 ``PROVIDER_RATE_LIMITED``
(a failure if rate limits count). Every other provider code is the provider answering —
a decline, a 404, a validation error — and counts as a success. Anything else (our own
database, a cancelled attempt, a refusal before any byte left the process) says nothing.

A call that succeeds without reaching the provider — the side-effect runner answering a
repeat from its idempotency record — is marked with :func:`provider_not_called`, so a
half-open probe answered that way does not close the breaker.
"""

from __future__ import annotations

from contextvars import ContextVar

from temporalio.exceptions import ApplicationError

from autobiz.breakers.machine import Outcome
from kernel.codes import ErrorCode

# Provider codes that mean the provider answered (it is up, whatever it said).
ANSWERED = frozenset(
    {
        ErrorCode.CARD_DECLINED,
        ErrorCode.PROVIDER_ERROR,
        ErrorCode.PROVIDER_NOT_FOUND,
        ErrorCode.PROVIDER_NOT_FOUND_YET,
        ErrorCode.PROVIDER_INVALID_REQUEST,
        ErrorCode.PROVIDER_STATE_CONFLICT,
        ErrorCode.PROVIDER_AUTH_FAILED,
        ErrorCode.IDEMPOTENCY_CONFLICT,
    }
)

_NOT_CALLED: ContextVar[bool] = ContextVar("autobiz_provider_not_called", default=False)


def provider_not_called() -> None:
    """The running activity answered without a provider request (a replayed result)."""
    _NOT_CALLED.set(True)


def start_call() -> None:
    _NOT_CALLED.set(False)


def was_not_called() -> bool:
    return _NOT_CALLED.get()


def classify(exc: BaseException | None, *, count_rate_limits: bool) -> tuple[Outcome, str | None]:
    """The breaker outcome of an activity that ended with ``exc`` (None: it returned),
    with the failure's code when it counts as one."""
    if exc is None:
        return (Outcome.UNKNOWN if was_not_called() else Outcome.SUCCESS), None
    if not isinstance(exc, ApplicationError):
        return Outcome.UNKNOWN, None
    code = exc.type
    if code == ErrorCode.PROVIDER_UNAVAILABLE or (
        count_rate_limits and code == ErrorCode.PROVIDER_RATE_LIMITED
    ):
        details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
        parts = [str(code), details.get("provider_code"), details.get("http_status")]
        return Outcome.FAILURE, " ".join(str(p) for p in parts if p)
    if code == ErrorCode.PROVIDER_RATE_LIMITED or code in ANSWERED:
        return Outcome.SUCCESS, None
    return Outcome.UNKNOWN, None
