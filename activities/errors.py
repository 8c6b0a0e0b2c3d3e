"""Provider errors → Temporal ``ApplicationError`` (retryable or not), in one place.

Every tool activity runs its provider work inside :func:`provider_errors`: a
:class:`ProviderError` becomes an ``ApplicationError`` whose ``type`` is the error's
stable code and whose ``non_retryable`` is ``not err.retryable``; a rate limit asks
Temporal for the provider's ``Retry-After`` as the next delay. Our own expected failures
(``AutobizError``) keep their code; the gate-bypass refusal is never retried.

A not-found is decisive, except on the first ``not_found_grace`` attempts of a call
whose contract grants one (a read of an object we were just told exists): there it is
``PROVIDER_NOT_FOUND_YET``, retryable, so a lagging read replica costs a retry with the
policy's backoff, not the order; the attempt after the grace answers the decisive
``PROVIDER_NOT_FOUND``. The attempts are the activity's own, visible in the history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from autobiz.errors import AutobizError
from autobiz.ledger.binding import BINDING_CODES
from autobiz.ledger.executor import (
    GateBypassedError,
    ProviderResult,
    SideEffectRunner,
    current_call,
)
from autobiz.providers.errors import CardDeclined, NotFound, ProviderError, RateLimited
from kernel.codes import ErrorCode
from kernel.contracts import CallContext
from kernel.redaction import redact_text

OutT = TypeVar("OutT", bound=BaseModel)
NON_RETRYABLE_OWN = frozenset({GateBypassedError.code, *BINDING_CODES})


def not_found_grace_left() -> tuple[int, int] | None:
    """``(attempt, grace)`` while this attempt is within its call's not-found grace."""
    call = current_call()
    if call is None or call.not_found_grace <= 0 or not activity.in_activity():
        return None
    attempt = activity.info().attempt
    return (attempt, call.not_found_grace) if attempt <= call.not_found_grace else None


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
        message, code, retryable = redact_text(str(exc)), exc.code, exc.retryable
        grace = not_found_grace_left() if isinstance(exc, NotFound) else None
        if grace is not None:
            message = f"not found yet (attempt {grace[0]}, grace {grace[1]}): {message}"
            code, retryable = ErrorCode.PROVIDER_NOT_FOUND_YET, True
            details.update(attempt=grace[0], not_found_grace=grace[1])
        return ApplicationError(
            message,
            details,
            type=code,
            non_retryable=not retryable,
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


async def run_side_effect(
    runner: SideEffectRunner,
    ctx: CallContext,
    input: BaseModel,
    output_model: type[OutT],
    execute: Callable[[], Awaitable[ProviderResult[OutT]]],
) -> OutT:
    """A side-effecting tool's provider work: once per idempotency key, with a receipt,
    provider errors mapped for Temporal."""
    with provider_errors():
        return await runner.run(ctx, input, output_model, activity.info().activity_id, execute)
