"""The shared bucket (``rate_limit_take``, migration 0011) and the limiter over it: grants
up to the burst, reservations queued behind it, refusals that take nothing and say when,
buckets per tenant, budget given back. The refill rate is tiny so no result depends on
how fast the test runs."""

from __future__ import annotations

from dataclasses import astuple
from datetime import timedelta

import pytest

from activities.errors import to_application_error
from autobiz.breakers.machine import Outcome
from autobiz.breakers.outcome import classify
from autobiz.db.database import Database
from autobiz.providers.errors import ProviderError
from autobiz.ratelimits.limiter import Limit, RateLimitWait, SharedRateLimiter, limits_of
from autobiz.settings import RateLimitSettings
from kernel.codes import ErrorCode
from tests.conftest import new_tenant
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration

SLOW = Limit(capacity=3, rate=0.001)  # one token back every 1000 s


async def take(db: Database, tenant: str, cost: float, max_wait: float) -> tuple[bool, float]:
    async with db.tenant(tenant) as s:
        row = await s.fetch_one(
            "SELECT granted, wait_seconds FROM rate_limit_take('stripe', %s, %s, %s, %s)",
            (SLOW.capacity, SLOW.rate, cost, max_wait),
        )
    assert row is not None
    return row["granted"], row["wait_seconds"]


async def tokens(db: Database, tenant: str, provider: str = "stripe") -> float:
    async with db.tenant(tenant) as s:
        value = await s.fetch_val(
            "SELECT tokens FROM rate_limit_buckets WHERE provider = %s", (provider,)
        )
    return float(value)


async def test_burst_then_reservations_then_refusal(database: Database, tenant: str) -> None:
    for _ in range(3):
        assert await take(database, tenant, 1, 0) == (True, 0.0)
    # The bucket is empty: with no wait allowed, refused, nothing taken, told when.
    granted, wait = await take(database, tenant, 1, 0)
    assert not granted and 990 < wait <= 1000
    assert await tokens(database, tenant) == pytest.approx(0, abs=0.01)
    # A caller that may wait gets a slot in the future; the next one queues behind it.
    granted, wait = await take(database, tenant, 1, 5000)
    assert granted and 990 < wait <= 1000
    granted, wait = await take(database, tenant, 1, 5000)
    assert granted and 1990 < wait <= 2000
    assert await tokens(database, tenant) == pytest.approx(-2, abs=0.01)


async def test_buckets_are_per_tenant_and_private(database: Database, tenant: str) -> None:
    other = await new_tenant(database)
    for _ in range(3):
        await take(database, tenant, 1, 0)
    assert (await take(database, tenant, 1, 0))[0] is False
    assert await take(database, other, 1, 0) == (True, 0.0)  # its own full bucket
    async with database.tenant(other) as s:
        seen = await s.fetch_all("SELECT tenant_id FROM rate_limit_buckets")
    assert [r["tenant_id"] for r in seen] == [other]


async def test_limiter_refusal_is_retryable_after_the_wait_and_not_a_provider_failure(
    database: Database, tenant: str
) -> None:
    limiter = SharedRateLimiter(database, {"stripe": SLOW}, max_wait=1.0)
    for _ in range(3):
        assert await limiter.take(tenant, "stripe") < 1.0
    with pytest.raises(RateLimitWait) as refused:
        await limiter.take(tenant, "stripe")
    assert refused.value.retry_after is not None and 990 < refused.value.retry_after <= 1000
    error = to_application_error(refused.value)
    assert error.type == ErrorCode.RATE_LIMIT_WAIT and not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=300)  # capped like a provider's 429
    # Nothing reached the provider: a circuit breaker learns nothing from it.
    assert classify(error, count_rate_limits=True) == (Outcome.UNKNOWN, None)
    # Unlimited providers are not asked about at all.
    assert await limiter.take(tenant, "llm") == 0.0


async def test_settle_gives_back_what_a_query_did_not_cost(database: Database, tenant: str) -> None:
    limiter = SharedRateLimiter(database, {"stripe": SLOW}, max_wait=0.0)
    throttle = limiter.for_tenant(tenant)
    await throttle.acquire("stripe", 3)
    await throttle.settle("stripe", reserved=3, actual=1)
    assert await tokens(database, tenant) == pytest.approx(2, abs=0.01)
    await throttle.settle("stripe", reserved=1, actual=4)  # cost more: taken, no waiting
    assert await tokens(database, tenant) == pytest.approx(-1, abs=0.01)


def test_published_limits_less_headroom() -> None:
    limits = limits_of(RateLimitSettings())
    # Rates 5 % under; buckets 0.2 s of refill under.
    assert astuple(limits["stripe"]) == pytest.approx((25 - 5, 25 * 0.95))
    assert astuple(limits["shopify"]) == pytest.approx((1000 - 10, 50 * 0.95))
    assert astuple(limits["printful"]) == pytest.approx((120 - 0.4, 2 * 0.95))
    assert "sendgrid" not in limits  # SendGrid publishes no number for mail/send
    exact = RateLimitSettings(sendgrid_per_second=10, headroom=0, burst_margin_seconds=0)
    assert limits_of(exact)["sendgrid"] == Limit(10, 10)


async def test_tenant_clients_take_each_request_from_their_tenants_bucket(
    database: Database, tenant: str, sandbox: Sandbox
) -> None:
    limiter = SharedRateLimiter(
        database, {"shopify": Limit(100, 0.001), "stripe": Limit(10, 0.001)}, max_wait=0.0
    )
    clients = await sandbox.tenant_clients(tenant)
    clients.limiter = limiter
    try:
        shopify = await clients.shopify(tenant)
        for _ in range(2):
            with pytest.raises(ProviderError):
                await shopify.get_order("987654321")
        stripe = await clients.stripe(tenant)
        with pytest.raises(ProviderError):
            await stripe.retrieve_payment_intent("pi_missing")
    finally:
        await clients.aclose()
    # GetOrder: 20 reserved before Shopify said it costs 12 (8 given back), then 12.
    assert await tokens(database, tenant, "shopify") == pytest.approx(100 - 12 - 12, abs=0.01)
    assert await tokens(database, tenant, "stripe") == pytest.approx(10 - 1, abs=0.01)
