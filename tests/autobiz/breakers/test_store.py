"""The breaker store on real PostgreSQL: two stores on pools of their own (as two worker
processes have) see one breaker; concurrent failures open it once; a tenant sees only
its own breakers; a reset is closed, logged as a transition and audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from autobiz.breakers.machine import BreakerState, Outcome, Policy
from autobiz.breakers.store import BreakerStore
from autobiz.db.database import Database
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration

POLICY = Policy(
    failure_threshold=3,
    failure_rate=0.5,
    window=timedelta(seconds=60),
    open_for=timedelta(seconds=1),
    probes=1,
    probe_timeout=timedelta(seconds=5),
)


@pytest.fixture
async def other_process_db(pg_database: ProvisionedDatabase) -> AsyncIterator[Database]:
    """A second pool of connections, as a second worker process has."""
    async with Database(pg_database.app_dsn, None, max_size=8) as db:
        yield db


async def _fail(store: BreakerStore, tenant: str, n: int = 1) -> None:
    for _ in range(n):
        await store.record(
            tenant,
            "stripe",
            Outcome.FAILURE,
            probe=False,
            failure="PROVIDER_UNAVAILABLE 503",
            actor="test",
            detail={},
        )


async def test_one_store_opens_it_and_the_other_is_refused(
    database: Database, other_process_db: Database, tenant: str
) -> None:
    a, b = BreakerStore(database, POLICY), BreakerStore(other_process_db, POLICY)
    admission, _ = await b.admit(tenant, "stripe", actor="b", detail={})
    assert admission.allowed
    await _fail(a, tenant, 3)
    refused, step = await b.admit(tenant, "stripe", actor="b", detail={})
    assert not refused.allowed and step.breaker.state is BreakerState.OPEN
    assert refused.retry_after is not None and refused.retry_after <= POLICY.open_for
    # Other providers of the tenant are not affected.
    assert (await b.admit(tenant, "printful", actor="b", detail={}))[0].allowed

    await asyncio.sleep(POLICY.open_for.total_seconds() + 0.1)
    probe, step = await b.admit(tenant, "stripe", actor="b", detail={"tool": "x"})
    assert probe.allowed and probe.probe and step.breaker.state is BreakerState.HALF_OPEN
    # The probe is out: the other process waits.
    assert not (await a.admit(tenant, "stripe", actor="a", detail={}))[0].allowed
    step = await b.record(
        tenant, "stripe", Outcome.SUCCESS, probe=True, failure=None, actor="b", detail={}
    )
    assert step.breaker.state is BreakerState.CLOSED
    assert (await a.admit(tenant, "stripe", actor="a", detail={}))[0].allowed

    events = await a.events(tenant, "stripe")
    assert [(e["from_state"], e["to_state"]) for e in reversed(events)] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert events[1]["detail"] == {"tool": "x"} and events[1]["actor"] == "b"


async def test_concurrent_failures_from_two_processes_open_it_exactly_once(
    database: Database, other_process_db: Database, tenant: str
) -> None:
    stores = [BreakerStore(database, POLICY), BreakerStore(other_process_db, POLICY)]
    await asyncio.gather(*(_fail(stores[i % 2], tenant) for i in range(12)))
    (status,) = await stores[0].status(tenant, "stripe")
    assert status.breaker.state is BreakerState.OPEN
    # Every failure up to the one that tripped it was counted, none twice or lost.
    assert status.breaker.failures == POLICY.failure_threshold
    events = await stores[1].events(tenant, "stripe")
    assert [(e["from_state"], e["to_state"]) for e in events] == [("closed", "open")]


async def test_a_tenant_sees_only_its_own_breakers(database: Database, tenant: str) -> None:
    store = BreakerStore(database, POLICY)
    other = await new_tenant(database)
    await _fail(store, other, 3)
    assert await store.status(tenant) == []
    assert (await store.admit(tenant, "stripe", actor="t", detail={}))[0].allowed
    assert [s.breaker.state for s in await store.status(other)] == [BreakerState.OPEN]


async def test_reset_closes_it_and_is_audited(database: Database, tenant: str) -> None:
    store = BreakerStore(database, POLICY)
    await _fail(store, tenant, 3)
    step = await store.reset(tenant, "stripe", actor="cli:ops", reason="Stripe says fixed")
    assert step.breaker.state is BreakerState.CLOSED and step.transition is not None
    assert (await store.admit(tenant, "stripe", actor="t", detail={}))[0].allowed
    async with database.tenant(tenant) as s:
        audit = await s.fetch_all(
            "SELECT actor, action, outcome, detail FROM audit_log WHERE tenant_id = %s",
            (tenant,),
        )
    assert audit == [
        {
            "actor": "cli:ops",
            "action": "breaker.reset",
            "outcome": "done",
            "detail": {"provider": "stripe", "reason": "Stripe says fixed", "from_state": "open"},
        }
    ]
    assert (await store.events(tenant, "stripe"))[0]["reason"] == "reset"
