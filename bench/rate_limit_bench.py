"""Provider rate limits with and without the shared limiter (DESIGN §13, issue 15 B5).

One run, one machine: the sandbox (its published limits on: Stripe test mode 25 req/s,
Shopify's GraphQL cost bucket of 1000 points restored at 50/s, Printful 120 req/min),
one scratch PostgreSQL database (created, migrated, dropped). For each provider, two
worker-like processes (``tests.support.rate_burst``: the tenant's clients built as a
worker builds them) burst the same keys at once, C requests in flight each, first
**without** the limiter (a 429 or ``THROTTLED`` is retried after the provider's
``Retry-After`` or wait, as Temporal would), then **with** the limiter shared through the
database. Each run is a fresh tenant and a reset sandbox.

From the sandbox's own request log (``/_control/requests``): requests it received, the
ones it refused (429 / ``THROTTLED``), and the budget used: the cost it accepted over a
full bucket plus the refill between the first and the last arrival. Stripe creates
PaymentIntents (both processes send each key, as two workers retrying one activity
would): the bench counts PaymentIntents per key, so a duplicate side effect shows.

    python bench/rate_limit_bench.py [--keys 150] [--concurrency 8] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import scratch_database  # noqa: E402

# provider -> (the sandbox's bucket, its refill per second): the published limits
PUBLISHED = {
    "stripe": (25.0, 25.0),
    "shopify": (1000.0, 50.0),
    "printful": (120.0, 2.0),
}


def new_tenant(admin_dsn: str) -> str:
    import psycopg

    tenant = f"bench-rl-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
    return tenant


async def one_run(
    control: Any,
    url: str,
    dsns: tuple[str, str],
    provider: str,
    keys: list[str],
    args: argparse.Namespace,
    limiter: bool,
) -> dict[str, Any]:
    from sandbox.accounts import credentials_of, generated_account
    from tests.support.rate_burst import BurstPlan, run_processes, utilisation

    await control.reset()
    await control.rate_limits(enabled=True)  # the published defaults
    admin_dsn, app_dsn = dsns
    tenant = new_tenant(admin_dsn)
    account = generated_account(tenant, secret=uuid.uuid4().hex)
    await control.add_account(account.model_dump())
    common: dict[str, Any] = {
        "sandbox_url": url,
        "app_dsn": app_dsn,
        "tenant": tenant,
        "credentials": credentials_of(account),
        "provider": provider,
        "concurrency": args.concurrency,
        "limiter": limiter,
        "start_at": time.time() + 3.0,
        "max_attempts": 200,
    }
    plans = [BurstPlan(keys=keys, **common), BurstPlan(keys=keys[::-1], **common)]
    reports = await run_processes(plans, within=900.0)
    capacity, rate = PUBLISHED[provider]
    use = utilisation(await control.requests(provider), capacity, rate)
    duplicates = 0
    if provider == "stripe":
        per_key = Counter(
            pi["metadata"].get("order_key") for pi in await control.stripe_payment_intents()
        )
        wanted = set(keys)
        duplicates = sum(n - 1 for k, n in per_key.items() if k in wanted and n > 1)
        missing = len(wanted - set(per_key))
        if missing:
            raise SystemExit(f"{provider}: {missing} keys have no PaymentIntent")
    return {
        "provider": provider,
        "limiter": "with" if limiter else "without",
        "sent": use.requests,
        "refused": use.limited,
        "limiter_waits": sum(r.limiter_refusals for r in reports),
        "share": use.share,
        "window": use.window_seconds,
        "elapsed": max(r.elapsed_seconds for r in reports),
        "duplicates": duplicates,
    }


async def bench(admin_dsn: str, app_dsn: str, args: argparse.Namespace) -> None:
    from pydantic import SecretStr

    from sandbox.app import build_app
    from sandbox.control_client import SandboxControl
    from sandbox.server import ServerThread
    from tests.support.sandbox import sandbox_settings

    token = secrets.token_urlsafe(24)
    settings = sandbox_settings()
    settings = settings.model_copy(
        update={"sandbox": settings.sandbox.model_copy(update={"control_token": SecretStr(token)})}
    )
    server = ServerThread(build_app(settings)).start()
    control = SandboxControl(server.url, token=token)
    keys_of = {
        "stripe": args.keys,
        "shopify": args.shopify_keys,
        "printful": args.printful_keys,
    }
    rows = []
    try:
        for provider in args.providers:
            keys = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(keys_of[provider])]
            if provider == "shopify":
                keys = [f"#{10_000 + i}" for i in range(len(keys))]
            for limiter in (False, True):
                dsns = (admin_dsn, app_dsn)
                row = await one_run(control, server.url, dsns, provider, keys, args, limiter)
                rows.append(row)
                print(
                    f"{provider:9} {row['limiter']:7} limiter: budget used {row['share']:.2f}, "
                    f"{row['refused']} refused by the provider (429/THROTTLED) of {row['sent']} "
                    f"sent, {row['limiter_waits']} failed fast by the limiter, "
                    f"{row['duplicates']} duplicate side effects, {row['elapsed']:.1f} s",
                    flush=True,
                )
    finally:
        await control.aclose()
        server.stop()
    print()
    print(
        "| provider | limiter | sent | 429/THROTTLED | limiter fail-fast | budget used | burst s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['provider']} | {r['limiter']} | {r['sent']} | {r['refused']} | "
            f"{r['limiter_waits']} | {r['share']:.0%} | {r['elapsed']:.1f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=150, help="Stripe keys (both processes)")
    parser.add_argument("--shopify-keys", type=int, default=60, help="Shopify searches each")
    parser.add_argument("--printful-keys", type=int, default=80, help="Printful reads each")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight per process")
    parser.add_argument("--providers", nargs="+", default=list(PUBLISHED), choices=list(PUBLISHED))
    parser.add_argument("--quick", action="store_true", help="Stripe and Shopify, fewer keys")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.shopify_keys, args.providers = 80, 40, ["stripe", "shopify"]
    with scratch_database("bench-rl") as (admin_dsn, app_dsn):
        asyncio.run(bench(admin_dsn, app_dsn, args))


if __name__ == "__main__":
    main()
