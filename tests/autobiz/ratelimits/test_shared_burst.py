"""Two worker processes bursting at the sandbox with its published limits on, each with
the shared limiter over one database (issue 15, B5): no 429 storm, at least 90 % of the
budget used over the burst, and every side effect once. Without the limiter the same
burst meets the sandbox's 429s, so the checks can fail."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from autobiz.db.database import Database
from sandbox.accounts import credentials_of
from tests.support.postgres import ProvisionedDatabase
from tests.support.rate_burst import BurstPlan, BurstReport, run_processes, utilisation
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration

STRIPE_PER_SECOND = 25.0  # test mode, reads and writes together


async def burst(
    sandbox: Sandbox,
    pg_database: ProvisionedDatabase,
    tenant: str,
    provider: str,
    keys: list[str],
    *,
    limiter: bool = True,
    rate_limit: dict[str, Any] | None = None,
) -> list[BurstReport]:
    """The same keys from two processes (the second in reverse order): each key is a
    request both make, as two workers retrying one activity would."""
    account = sandbox.accounts.get(tenant) or await sandbox.host(tenant)
    common: dict[str, Any] = {
        "sandbox_url": sandbox.url,
        "app_dsn": pg_database.app_dsn,
        "tenant": tenant,
        "credentials": credentials_of(account),
        "provider": provider,
        "limiter": limiter,
        "rate_limit": rate_limit or {},
        "start_at": time.time() + 2.0,  # both processes up and connected by then
    }
    plans = [BurstPlan(keys=keys, **common), BurstPlan(keys=keys[::-1], **common)]
    return await run_processes(plans)


async def test_stripe_burst_uses_the_budget_without_429s(
    sandbox: Sandbox, pg_database: ProvisionedDatabase, database: Database, tenant: str
) -> None:
    await sandbox.control.rate_limits(enabled=True, stripe_per_second=STRIPE_PER_SECOND)
    # Long enough (about 7 s) that the margins kept at the start weigh little.
    keys = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(90)]
    reports = await burst(sandbox, pg_database, tenant, "stripe", keys)

    use = utilisation(await sandbox.control.requests("stripe"), 25.0, STRIPE_PER_SECOND)
    assert use.requests == 2 * len(keys)
    assert use.limited == 0 and sum(r.provider_refusals for r in reports) == 0
    assert use.share >= 0.9, use
    # Each key is one PaymentIntent, whichever process got there first.
    assert reports[0].results == reports[1].results
    intents = await sandbox.control.stripe_payment_intents()
    mine = [pi for pi in intents if pi["metadata"].get("order_key") in set(keys)]
    assert sorted(pi["metadata"]["order_key"] for pi in mine) == sorted(keys)


async def test_without_the_limiter_the_same_burst_meets_429s(
    sandbox: Sandbox, pg_database: ProvisionedDatabase, tenant: str
) -> None:
    await sandbox.control.rate_limits(enabled=True, stripe_per_second=STRIPE_PER_SECOND)
    keys = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(60)]
    reports = await burst(sandbox, pg_database, tenant, "stripe", keys, limiter=False)

    use = utilisation(await sandbox.control.requests("stripe"), 25.0, STRIPE_PER_SECOND)
    assert use.limited > 0 and sum(r.provider_refusals for r in reports) == use.limited
    assert sum(r.limiter_refusals for r in reports) == 0
    # Still once per key: the idempotency keys hold, the limiter is about the budget.
    intents = await sandbox.control.stripe_payment_intents()
    assert sorted(
        pi["metadata"]["order_key"] for pi in intents if pi["metadata"].get("order_key") in keys
    ) == sorted(keys)


async def test_shopify_burst_spends_the_cost_bucket_without_throttling(
    sandbox: Sandbox, pg_database: ProvisionedDatabase, tenant: str
) -> None:
    # A smaller bucket than a standard plan's (1000, 50/s) so that the burst outruns it
    # in seconds; the limiter is configured with the same numbers.
    bucket, restore = 200.0, 200.0
    await sandbox.control.rate_limits(
        enabled=True, shopify_bucket_size=bucket, shopify_restore_rate=restore
    )
    keys = [f"#{1000 + i}" for i in range(30)]
    reports = await burst(
        sandbox,
        pg_database,
        tenant,
        "shopify",
        keys,
        rate_limit={"shopify_bucket_size": bucket, "shopify_restore_rate": restore},
    )

    records = await sandbox.control.requests("shopify")
    use = utilisation(records, bucket, restore)
    assert use.requests == 2 * len(keys)
    assert {r["cost"] for r in records} == {20.0}  # SearchOrders, as the sandbox charges it
    assert use.limited == 0 and sum(r.provider_refusals for r in reports) == 0
    assert use.share >= 0.9, use
