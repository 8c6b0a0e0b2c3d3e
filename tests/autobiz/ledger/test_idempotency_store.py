"""The idempotency store against the real database, with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autobiz.db.database import Database
from autobiz.ledger.idempotency_store import (
    IdempotencyInProgressError,
    IdempotencyStore,
    IdempotentOutcome,
)
from kernel.idempotency import IdempotencyKeys, keys_for

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Provider:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict:
        self.calls += 1
        return {"refund_id": f"re_{self.calls}", "status": "succeeded"}


def _keys(tenant: str, step: str = "refund"):
    return keys_for(
        tenant=tenant,
        workflow_id="refund:t:r1",
        step=step,
        tool="stripe.create_refund@1",
        input={"amount_minor": 5000},
    )


async def _run(
    store: IdempotencyStore,
    tenant: str,
    k: IdempotencyKeys,
    execute: Callable[[], Awaitable[dict[str, Any]]],
    *,
    tool: str = "t",
    lease: timedelta | None = None,
) -> IdempotentOutcome:
    """``execute`` once under ``k`` (the store decides whether it runs)."""
    return await store.run(
        tenant,
        internal_key=k.internal,
        external_key=k.external,
        tool=tool,
        execute=execute,
        lease=lease,
    )


async def test_first_executes_duplicate_returns_recorded_after_window_executes(
    database: Database, tenant: str
) -> None:
    clock, provider = Clock(), Provider()
    store = IdempotencyStore(database, window=timedelta(hours=24), clock=clock)
    k = _keys(tenant)

    async def run() -> IdempotentOutcome:
        return await _run(store, tenant, k, provider, tool="stripe.create_refund@1")

    first = await run()
    assert (first.replayed, provider.calls, first.result["refund_id"]) == (False, 1, "re_1")

    clock.now += timedelta(hours=23, minutes=59)
    dup = await run()
    assert dup.replayed and dup.result == first.result and dup.hit_count == 1
    assert provider.calls == 1  # no provider call inside the window
    again = await run()
    assert again.hit_count == 2 and provider.calls == 1

    clock.now += timedelta(minutes=2)  # past 24 h
    late = await run()
    assert not late.replayed and provider.calls == 2 and late.result["refund_id"] == "re_2"

    record = await store.get(tenant, k.internal)
    assert record is not None
    assert record.first_seen_at == datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    assert record.hit_count == 2 and record.status == "succeeded"
    assert record.external_key == k.external


async def test_a_failed_attempt_lets_the_retry_execute(database: Database, tenant: str) -> None:
    store = IdempotencyStore(database, clock=Clock())
    k = _keys(tenant)
    calls = 0

    async def flaky() -> dict:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("provider 503")
        return {"ok": True}

    with pytest.raises(RuntimeError):
        await _run(store, tenant, k, flaky)
    out = await _run(store, tenant, k, flaky)
    assert out.result == {"ok": True} and calls == 2


async def test_concurrent_duplicate_is_told_to_retry(database: Database, tenant: str) -> None:
    store = IdempotencyStore(database)
    k = _keys(tenant)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> dict:
        started.set()
        await release.wait()
        return {"ok": 1}

    first = asyncio.create_task(_run(store, tenant, k, slow))
    await started.wait()
    with pytest.raises(IdempotencyInProgressError):
        await _run(store, tenant, k, slow)
    release.set()
    assert (await first).result == {"ok": 1}


async def test_keys_are_tenant_scoped(database: Database, tenant: str) -> None:
    from tests.conftest import new_tenant

    other = await new_tenant(database)
    store = IdempotencyStore(database, clock=Clock())
    provider = Provider()
    k = _keys(tenant)
    await _run(store, tenant, k, provider)
    assert await store.get(other, k.internal) is None


async def test_abandoned_claim_is_taken_over_after_the_attempt_lease(
    database: Database, tenant: str
) -> None:
    """A worker killed mid-call leaves its claim in_progress; the retry (which Temporal
    starts only after the attempt's start-to-close timeout) takes over with the same keys."""
    clock = Clock()
    store = IdempotencyStore(database, clock=clock)
    k = _keys(tenant)
    async with database.tenant(tenant) as s:  # the killed attempt's claim, never finished
        await s.execute(
            "INSERT INTO idempotency_keys (tenant_id, internal_key, external_key, tool, "
            "status, first_seen_at, last_seen_at, expires_at) "
            "VALUES (%s, %s, %s, 't', 'in_progress', %s, %s, %s)",
            (tenant, k.internal, k.external, clock.now, clock.now, clock.now + timedelta(days=1)),
        )
    provider = Provider()

    async def retry() -> IdempotentOutcome:
        return await _run(store, tenant, k, provider, lease=timedelta(seconds=30))

    clock.now += timedelta(seconds=20)
    with pytest.raises(IdempotencyInProgressError):  # within the 30 s attempt: still its
        await retry()
    clock.now += timedelta(seconds=15)
    out = await retry()
    assert out.replayed is False and provider.calls == 1
