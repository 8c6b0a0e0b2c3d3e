"""Provider errors → Temporal ``ApplicationError`` (retryable or not), in one place.

Every tool activity runs its provider work inside :func:`provider_errors`: a
:class:`ProviderError` becomes an ``ApplicationError`` whose ``type`` is the error's
stable code and whose ``non_retryable`` is ``not err.retryable``; a rate limit asks
Temporal for the provider's ``Retry-After`` as the next delay. Our own expected failures
(``AutobizError``) keep their code; the gate-bypass refusal is never retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from autobiz.errors import AutobizError
from autobiz.ledger.executor import GateBypassedError
from autobiz.providers.errors import CardDeclined, ProviderError, RateLimited
from kernel.redaction import redact_text

NON_RETRYABLE_OWN = frozenset({GateBypassedError.code})


def to_application_error(exc: BaseException) -> ApplicationError:
    if isinstance(exc, ProviderError):
        details: dict[str, Any] = {
            "provider": exc.provider,
            "provider_code": exc.provider_code,
            "http_status": exc.http_status,
        }
        if isinstance(exc, CardDeclined):
            details.update(decline_code=exc.decline_code, hard=exc.hard)
        delay = None
        if isinstance(exc, RateLimited) and exc.retry_after:
            delay = timedelta(seconds=min(exc.retry_after, 300.0))
        return ApplicationError(
            redact_text(str(exc)),
            details,
            type=exc.code,
            non_retryable=not exc.retryable,
            next_retry_delay=delay,
        )
    if isinstance(exc, AutobizError):
        return ApplicationError(
            redact_text(str(exc)), type=exc.code, non_retryable=exc.code in NON_RETRYABLE_OWN
        )
    raise TypeError(f"not a mappable error: {type(exc).__name__}")


@contextmanager
def provider_errors() -> Iterator[None]:
    try:
        yield
    except (ProviderError, AutobizError) as exc:
        raise to_application_error(exc) from exc
