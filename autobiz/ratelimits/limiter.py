"""The rate limiter every worker process shares: one token bucket per provider account.

Why PostgreSQL (as for the circuit breakers, :mod:`autobiz.breakers.store`): the workers
need it already, a row lock makes each take atomic across processes, and its clock is
the one clock every worker reads. One take is one statement (``rate_limit_take``,
migration 0011) in a short tenant-scoped transaction — a millisecond or two, small next
to the provider request it guards, and far below the tens of requests per second the
providers allow.

Waiting or failing fast: a grant may reserve a slot up to ``max_wait`` ahead; the
caller sleeps until then inside the activity and sends. Reservations queue callers in
order, so a burst spreads over the budget at the published rate instead of meeting
429s. When the slot is further away than that, nothing is reserved and the call fails
fast with :class:`RateLimitWait` (retryable, ``retry_after`` = the wait, which Temporal
uses as the next retry delay): a long sleep would hold an activity slot and outlive the
tools' 30 s start-to-close, and a retry leaves the slot to calls that can use it now.
A refusal costs an attempt, so ``max_wait`` is not small: with 5 s, a Stripe account
queues about 120 calls ahead per round of retries, and a tool's 5 to 8 attempts ride
out a burst of several hundred calls at once. The refusal is raised before any
request, so a circuit breaker does not count it.

If the limiter's store cannot be reached, the request goes through (logged): the
limiter protects the provider account, it must not add an outage of its own; the
provider's own 429 is still the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import psycopg

from autobiz.db.database import Database
from autobiz.errors import AutobizError
from autobiz.providers.errors import RateLimited
from autobiz.settings import RateLimitSettings
from kernel.codes import ErrorCode
from kernel.metrics import record_rate_limit_wait, record_rate_limited

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """A token bucket: ``capacity`` (the burst) refilled at ``rate`` per second."""

    capacity: float
    rate: float


class RateLimitWait(RateLimited):
    """Retryable: the account's budget is not there within the longest wait; nothing was
    sent. ``retry_after`` is when it will be."""

    code = ErrorCode.RATE_LIMIT_WAIT


def limits_of(settings: RateLimitSettings) -> dict[str, Limit]:
    """The published limits of the settings, less the headroom (providers with none are
    not limited). Shopify's bucket is in query cost points, the others' in requests."""
    rate_keep, margin = 1.0 - settings.headroom, settings.burst_margin_seconds
    published: dict[str, tuple[float, float]] = {}  # provider -> (bucket, per second)
    if settings.stripe_per_second is not None:
        published["stripe"] = (settings.stripe_per_second, settings.stripe_per_second)
    if settings.shopify_bucket_size is not None:
        published["shopify"] = (settings.shopify_bucket_size, settings.shopify_restore_rate)
    if settings.printful_per_minute is not None:
        published["printful"] = (settings.printful_per_minute, settings.printful_per_minute / 60)
    if settings.sendgrid_per_second is not None:
        published["sendgrid"] = (settings.sendgrid_per_second, settings.sendgrid_per_second)
    return {
        provider: Limit(capacity=max(bucket - rate * margin, 1.0), rate=rate * rate_keep)
        for provider, (bucket, rate) in published.items()
    }


@dataclass
class SharedRateLimiter:
    """Takes budget for a tenant's provider request from the shared bucket."""

    db: Database
    limits: dict[str, Limit]
    max_wait: float = 5.0

    def for_tenant(self, tenant_id: str) -> TenantThrottle:
        return TenantThrottle(self, tenant_id)

    async def take(self, tenant_id: str, provider: str, cost: float = 1.0) -> float:
        """Wait for ``cost`` of ``provider``'s budget; return the seconds waited. Raises
        :class:`RateLimitWait` when it is further away than ``max_wait``."""
        limit = self.limits.get(provider)
        if limit is None:
            return 0.0
        cost = min(cost, limit.capacity)  # a request bigger than the bucket waits for all of it
        started = time.monotonic()
        answer = await self._take(tenant_id, provider, limit, cost, self.max_wait)
        if answer is None:
            return 0.0
        granted, wait = answer
        if not granted:
            record_rate_limited(provider, tenant_id)
            raise RateLimitWait(
                f"{provider} rate limit (tenant {tenant_id}): no budget for {wait:.2f} s, "
                "nothing sent",
                provider=provider,
                retry_after=wait,
                provider_code="local_budget",
                http_status=None,
            )
        if wait > 0:
            await asyncio.sleep(wait)
        waited = time.monotonic() - started
        record_rate_limit_wait(provider, tenant_id, waited)
        return waited

    async def give_back(self, tenant_id: str, provider: str, amount: float) -> None:
        """Return ``amount`` of budget (negative: take it, without waiting)."""
        limit = self.limits.get(provider)
        if limit is None or amount == 0:
            return
        await self._take(tenant_id, provider, limit, -amount, float("inf"))

    async def _take(
        self, tenant_id: str, provider: str, limit: Limit, cost: float, max_wait: float
    ) -> tuple[bool, float] | None:
        try:
            async with self.db.tenant(tenant_id) as session:
                row = await session.fetch_one(
                    "SELECT granted, wait_seconds FROM rate_limit_take(%s, %s, %s, %s, %s)",
                    (provider, limit.capacity, limit.rate, cost, max_wait),
                )
        except (psycopg.Error, AutobizError):
            log.warning(
                "rate limit %s/%s unavailable: request let through",
                provider,
                tenant_id,
                exc_info=True,
            )
            return None
        assert row is not None
        return bool(row["granted"]), float(row["wait_seconds"])


@dataclass(frozen=True)
class TenantThrottle:
    """A :class:`~autobiz.providers.throttle.Throttle` for one tenant's clients."""

    limiter: SharedRateLimiter
    tenant_id: str

    async def acquire(self, provider: str, cost: float = 1.0) -> None:
        await self.limiter.take(self.tenant_id, provider, cost)

    async def settle(self, provider: str, reserved: float, actual: float) -> None:
        await self.limiter.give_back(self.tenant_id, provider, reserved - actual)


def rate_limiter(settings: RateLimitSettings, db: Database) -> SharedRateLimiter | None:
    """The worker's limiter, or None when rate limits are disabled."""
    if not settings.enabled:
        return None
    return SharedRateLimiter(db, limits_of(settings), max_wait=settings.max_wait_seconds)
