"""The pool lends a connection handed back a moment ago without its liveness round trip
(one per transaction otherwise); one that died meanwhile costs the caller nothing: the
transaction begins again on a checked connection, before anything was done."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from autobiz.db import database as database_module
from autobiz.db.database import Database
from autobiz.errors import DatabaseError
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the pool's liveness checks (the round trip the freshness rule saves)."""
    done: list[int] = []
    real = AsyncConnectionPool.check_connection

    async def counted(conn: psycopg.AsyncConnection[object]) -> None:
        done.append(1)
        await real(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    yield done


async def _pid(db: Database, tenant: str) -> int:
    async with db.tenant(tenant) as s:
        return int(await s.fetch_val("SELECT pg_backend_pid()"))


def _terminate(admin_dsn: str, pid: int) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_a_connection_back_a_moment_ago_is_lent_unchecked(
    pg_database: ProvisionedDatabase, checks: list[int]
) -> None:
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        tenant = await new_tenant(db)
        checks.clear()
        pids = {await _pid(db, tenant) for _ in range(10)}
        assert len(pids) == 1  # one connection, lent ten times
        assert len(checks) <= 1  # only a borrow of one not yet handed back is checked


async def test_an_idle_connection_is_checked(
    pg_database: ProvisionedDatabase, checks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "FRESH_SECONDS", 0.0)
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        tenant = await new_tenant(db)
        checks.clear()
        for _ in range(5):
            await _pid(db, tenant)
        assert len(checks) == 5


async def test_a_connection_that_died_meanwhile_costs_the_caller_nothing(
    pg_database: ProvisionedDatabase, checks: list[int]
) -> None:
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=2, max_size=2) as db:
        tenant = await new_tenant(db)
        # Both pooled connections die while in the pool (a PostgreSQL restart kills all).
        async with db.tenant(tenant) as a, db.tenant(tenant) as b:
            pids = [
                await a.fetch_val("SELECT pg_backend_pid()"),
                await b.fetch_val("SELECT pg_backend_pid()"),
            ]
        for pid in pids:
            _terminate(pg_database.admin_dsn, pid)
        checks.clear()
        async with db.tenant(tenant) as s:
            await s.execute(
                "INSERT INTO order_state (tenant_id, order_id, state, state_hash) "
                "VALUES (%s, 'after-kill', 'paid', 'h')",
                (tenant,),
            )
            new_pid = await s.fetch_val("SELECT pg_backend_pid()")
        assert new_pid not in pids
        assert checks  # the second beginning checked what it was lent
        async with db.tenant(tenant) as s:
            assert await s.fetch_val("SELECT count(*) FROM order_state") == 1


async def test_an_error_inside_the_transaction_is_not_retried(
    pg_database: ProvisionedDatabase,
) -> None:
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        tenant = await new_tenant(db)
        bodies = 0
        pid = await _pid(db, tenant)
        with pytest.raises(DatabaseError) as raised:
            async with db.tenant(tenant) as s:
                bodies += 1
                _terminate(pg_database.admin_dsn, pid)  # dies under the caller's statement
                await s.execute("SELECT 1")
        assert bodies == 1 and raised.value.code == "DATABASE_UNAVAILABLE"
        assert await _pid(db, tenant) != pid  # the pool replaced it
