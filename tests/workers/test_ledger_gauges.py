"""The gauges read from the database (``workers.ledger_gauges``) on a real Prometheus
endpoint: per tenant and action, only the worker's tenants, back to 0 when a series
empties, and the last good values kept (with an old refresh time) while the database
is away."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from autobiz.db.database import Database
from autobiz.errors import DatabaseError
from autobiz.settings import Settings, WorkerSettings
from tests.conftest import new_tenant
from tests.support.stack import free_port
from tests.workers.test_worker_metrics import Sample, parse_exposition, total
from workers.ledger_gauges import LedgerGauges
from workers.worker import metrics_runtime

pytestmark = pytest.mark.integration

BACKLOG = "autobiz_approval_backlog"
OLDEST = "autobiz_approval_backlog_oldest_age_seconds"
OPEN = "autobiz_invariant_violations_open"
DRIFT = "autobiz_reconciliation_drift_open"
REFRESHED = "autobiz_metrics_refresh_timestamp_seconds"
BREAKER = "autobiz_breaker_state"


async def _approval(db: Database, tenant: str, action: str, age: timedelta) -> str:
    request_id = uuid.uuid4().hex
    at = datetime.now(UTC) - age
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO hitl_requests (request_id, tenant_id, workflow_id, action, "
            "required_role, status, requested_at, expires_at) "
            "VALUES (%s, %s, %s, %s, 'finance', 'pending', %s, %s)",
            (request_id, tenant, f"wf-{request_id}", action, at, at + timedelta(days=1)),
        )
    return request_id


async def _incident(db: Database, tenant: str, kind: str, ref: str) -> None:
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO incidents (tenant_id, kind, check_name, entity_ref, summary, "
            "first_run_id, last_run_id) VALUES (%s, %s, 'test', %s, 'test', 'r', 'r')",
            (tenant, kind, ref),
        )


async def _drift(db: Database, tenant: str, kind: str, ref: str, status: str) -> None:
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO reconciliation (tenant_id, run_id, kind, entity_ref, financial, "
            "action, status) VALUES (%s, 'r', %s, %s, false, 'none', %s)",
            (tenant, kind, ref, status),
        )


async def _breaker(db: Database, tenant: str, provider: str, state: str, until: timedelta) -> None:
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO circuit_breakers (tenant_id, provider, state, calls, failures, "
            "opened_at, open_until) VALUES (%s, %s, %s, 5, 5, now(), now() + %s)",
            (tenant, provider, state, until),
        )


async def _scrape(url: str) -> list[Sample]:
    async with httpx.AsyncClient() as http:
        resp = await http.get(url)
    assert resp.status_code == 200
    return parse_exposition(resp.text)


async def test_gauges_follow_the_tables(database: Database, tenant: str) -> None:
    other = await new_tenant(database)  # not served by this worker
    bind = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(Settings(worker=WorkerSettings(metrics_bind=bind)))
    assert runtime is not None
    url = f"http://{bind}/metrics"
    gauges = LedgerGauges(runtime.metric_meter, database, [tenant])

    decided = await _approval(database, tenant, "refund", timedelta(minutes=20))
    await _approval(database, tenant, "refund", timedelta(minutes=5))
    await _approval(database, tenant, "capture_payment", timedelta(seconds=30))
    await _approval(database, other, "refund", timedelta(hours=3))
    await _incident(database, tenant, "INV-05", "receipt:1")
    await _incident(database, tenant, "INV-05", "receipt:2")
    await _drift(database, tenant, "refund_outside", "re_1", "pending_approval")
    await _drift(database, tenant, "refund_outside", "re_2", "repaired")  # done: not open
    await _breaker(database, tenant, "printful", "open", timedelta(minutes=5))
    await _breaker(database, tenant, "stripe", "open", -timedelta(seconds=1))  # time is up
    before = datetime.now(UTC).timestamp()
    await gauges.refresh()

    s = await _scrape(url)
    refund = {"tenant": tenant, "action": "refund"}
    assert total(s, BACKLOG, **refund) == 2
    assert 20 * 60 <= total(s, OLDEST, **refund) < 21 * 60
    assert total(s, BACKLOG, tenant=tenant, action="capture_payment") == 1
    assert total(s, BACKLOG, tenant=other) == 0  # another worker's tenant: no series
    assert not [x for x in s if x[1].get("tenant") == other]
    assert total(s, OPEN, tenant=tenant, kind="INV-05", status="open") == 2
    assert total(s, DRIFT, tenant=tenant, kind="refund_outside", status="pending_approval") == 1
    assert total(s, DRIFT, tenant=tenant, status="repaired") == 0
    assert total(s, REFRESHED) >= int(before)
    # The shared breakers, whichever worker moved them: open; past open_until, half-open.
    assert total(s, BREAKER, tenant=tenant, provider="printful") == 2
    assert total(s, BREAKER, tenant=tenant, provider="stripe") == 1

    # The oldest refund is decided, the incidents resolved: the series read 0 or move on.
    async with database.tenant(tenant) as session:
        await session.execute(
            "UPDATE hitl_requests SET status = 'approved', decided_by = 'omar', "
            "decided_at = now() WHERE request_id = %s",
            (decided,),
        )
        await session.execute(
            "UPDATE incidents SET status = 'resolved', resolved_by = 'ops', "
            "resolved_at = now(), resolution = 'test'"
        )
        await session.execute(
            "UPDATE circuit_breakers SET state = 'closed', open_until = NULL "
            "WHERE provider = 'printful'"
        )
    await gauges.refresh()
    s = await _scrape(url)
    assert total(s, BREAKER, tenant=tenant, provider="printful") == 0
    assert total(s, BACKLOG, **refund) == 1
    assert 5 * 60 <= total(s, OLDEST, **refund) < 6 * 60
    series = [x for x in s if x[0] == OPEN and x[1].get("tenant") == tenant]
    assert series and {value for _, _, value in series} == {0.0}  # there, and 0


async def test_a_refresh_without_the_database_keeps_the_values(
    database: Database, tenant: str
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(Settings(worker=WorkerSettings(metrics_bind=bind)))
    assert runtime is not None
    url = f"http://{bind}/metrics"
    await _approval(database, tenant, "refund", timedelta(minutes=1))
    await LedgerGauges(runtime.metric_meter, database, [tenant]).refresh()
    s = await _scrape(url)
    stamp = total(s, REFRESHED)
    assert total(s, BACKLOG, tenant=tenant, action="refund") == 1

    # A pool to nowhere: every pass fails (logged), the loop keeps going, the values stay.
    gone = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/none", timeout=0.2)
    with pytest.raises(DatabaseError):
        await LedgerGauges(runtime.metric_meter, gone, [tenant]).refresh()
    loop = asyncio.create_task(LedgerGauges(runtime.metric_meter, gone, [tenant]).run(0.05))
    await asyncio.sleep(1.0)  # several failed passes
    assert not loop.done()
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    s = await _scrape(url)
    assert total(s, BACKLOG, tenant=tenant, action="refund") == 1
    assert total(s, REFRESHED) == stamp
