"""One worker-like process bursting provider requests at the sandbox (issue 15, B5).

``python -m tests.support.rate_burst`` reads a :class:`BurstPlan` as JSON on stdin (the
tenant's credentials travel there, never on the command line), builds the tenant's
provider clients the way a worker does (:class:`TenantClients`, with the shared rate
limiter unless ``limiter`` is off), waits until ``start_at`` so that every process starts
together, and makes one request per key with ``concurrency`` in flight. A request
refused — by the limiter (``RATE_LIMIT_WAIT``) or by the provider (a 429, Shopify's
``THROTTLED``) — is sent again after its ``retry_after``, as Temporal's retry would.
It prints a :class:`BurstReport` as JSON.

The test (``tests/autobiz/ratelimits``) and the bench (``bench/rate_limit_bench.py``)
run two of these side by side against one sandbox and one database.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Literal

from pydantic import BaseModel

Provider = Literal["stripe", "shopify", "printful"]


class BurstPlan(BaseModel):
    sandbox_url: str
    app_dsn: str
    tenant: str
    credentials: dict[str, str]
    provider: Provider
    keys: list[str]
    concurrency: int = 8
    start_at: float = 0.0
    limiter: bool = True
    rate_limit: dict[str, Any] = {}  # RateLimitSettings fields
    max_attempts: int = 60


class BurstReport(BaseModel):
    results: dict[str, str]  # key -> what the provider answered (an object id, a count)
    limiter_refusals: int  # RATE_LIMIT_WAIT: nothing sent
    provider_refusals: int  # 429 / THROTTLED answered by the provider
    elapsed_seconds: float


async def _request(clients: Any, plan: BurstPlan, key: str) -> str:
    if plan.provider == "stripe":
        stripe = await clients.stripe(plan.tenant)
        pi = await stripe.create_payment_intent(
            amount=1000, currency="usd", order_key=key, idempotency_key=f"burst:{key}"
        )
        return str(pi.id)
    if plan.provider == "shopify":
        shopify = await clients.shopify(plan.tenant)
        return str(len(await shopify.search_orders(f"name:{key}", first=5)))
    printful = await clients.printful(plan.tenant)
    return "found" if await printful.find_by_external_id(key) else "none"


async def run(plan: BurstPlan) -> BurstReport:
    from autobiz.db.database import Database
    from autobiz.providers.errors import RateLimited
    from autobiz.providers.tenant_clients import TenantClients
    from autobiz.ratelimits.limiter import RateLimitWait, SharedRateLimiter, rate_limiter
    from autobiz.secrets import CredentialStore, MappingSecretsBackend
    from autobiz.settings import RateLimitSettings
    from tests.support.sandbox import sandbox_settings

    settings = sandbox_settings(plan.sandbox_url, timeout=30.0)
    store = CredentialStore(MappingSecretsBackend({plan.tenant: plan.credentials}))
    report = BurstReport(results={}, limiter_refusals=0, provider_refusals=0, elapsed_seconds=0.0)
    async with Database(plan.app_dsn, min_size=2, max_size=plan.concurrency) as db:
        limiter: SharedRateLimiter | None = None
        if plan.limiter:
            limiter = rate_limiter(RateLimitSettings(**plan.rate_limit), db)
        clients = TenantClients(settings, store, limiter)
        await clients.for_tenant(plan.tenant)  # build the clients before the clock starts
        queue = list(reversed(plan.keys))

        async def one(key: str) -> None:
            for _ in range(plan.max_attempts):
                try:
                    report.results[key] = await _request(clients, plan, key)
                    return
                except RateLimitWait as exc:
                    report.limiter_refusals += 1
                    await asyncio.sleep(exc.retry_after or 0.05)
                except RateLimited as exc:
                    report.provider_refusals += 1
                    await asyncio.sleep(exc.retry_after or 1.0)
            raise RuntimeError(f"{key}: still refused after {plan.max_attempts} attempts")

        async def sender() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        started = time.monotonic()
        try:
            await asyncio.gather(*(sender() for _ in range(plan.concurrency)))
        finally:
            report.elapsed_seconds = time.monotonic() - started
            await clients.aclose()
    return report


class Utilisation(BaseModel):
    """How much of a provider's budget a burst used, from the sandbox's request log."""

    requests: int
    limited: int  # 429s / THROTTLED the sandbox answered
    used: float  # cost of the requests it accepted
    budget: float  # a full bucket plus the refill between the first and the last arrival
    window_seconds: float

    @property
    def share(self) -> float:
        return self.used / self.budget if self.budget else 0.0


def utilisation(records: list[dict[str, Any]], capacity: float, rate: float) -> Utilisation:
    """``records`` from ``/_control/requests``; ``capacity``/``rate`` the sandbox's bucket."""
    if not records:
        return Utilisation(requests=0, limited=0, used=0.0, budget=0.0, window_seconds=0.0)
    times = [r["at"] for r in records]
    window = max(times) - min(times)
    accepted = [r for r in records if not r["limited"]]
    return Utilisation(
        requests=len(records),
        limited=len(records) - len(accepted),
        used=sum(r["cost"] for r in accepted),
        budget=capacity + rate * window,
        window_seconds=window,
    )


async def run_processes(plans: list[BurstPlan], *, within: float = 120.0) -> list[BurstReport]:
    """Run each plan in its own ``python -m tests.support.rate_burst`` process, at once."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.rate_burst",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in plans
    ]
    talks = [
        p.communicate(plan.model_dump_json().encode()) for p, plan in zip(procs, plans, strict=True)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*talks), within)
    reports = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"burst process failed ({proc.returncode}): {err.decode()[-2000:]}")
        reports.append(BurstReport.model_validate_json(out.decode().strip().splitlines()[-1]))
    return reports


def main() -> None:
    plan = BurstPlan.model_validate_json(sys.stdin.read())
    report = asyncio.run(run(plan))
    print(report.model_dump_json())


if __name__ == "__main__":
    main()
