"""Provider errors → Temporal ``ApplicationError`` (retryable or not), in one place.

Every tool activity runs its provider work inside :func:`provider_errors`: a
:class:`ProviderError` becomes an ``ApplicationError`` whose ``type`` is the error's
stable code and whose ``non_retryable`` is ``not err.retryable``; a rate limit asks
Temporal for the provider's ``Retry-After`` as the next delay. Our own expected failures
(``AutobizError``) keep their code; the gate-bypass refusal is never retried.
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
from autobiz.ledger.executor import GateBypassedError, ProviderResult, SideEffectRunner
from autobiz.providers.errors import CardDeclined, ProviderError, RateLimited
from kernel.contracts import CallContext
from kernel.redaction import redact_text

OutT = TypeVar("OutT", bound=BaseModel)
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
