"""A tenant transaction begins with its tenant in one round trip and ends, reset, in
one (``COMMIT; RESET ALL`` or ``ROLLBACK; RESET ALL``): what it guarantees must hold on
every way out — a body that raises is rolled back and leaves nothing for the next
borrower, a failed statement keeps its error, a savepoint still nests."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from autobiz.db.database import Database, TenantSession
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration


async def _insert_order(s: TenantSession, tenant: str, order_id: str) -> None:
    await s.execute(
        "INSERT INTO order_state (tenant_id, order_id, version, state, state_hash)"
        " VALUES (%s, %s, 1, 'paid', 'h')",
        (tenant, order_id),
    )


async def _next_borrower(db: Database) -> dict[str, object]:
    async with db._connection(db._app_pool) as conn:  # the raw next borrower
        cur = await conn.execute(
            "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS t, "
            "current_setting('work_mem') AS work_mem"
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def test_a_body_that_raises_is_rolled_back_and_leaves_a_clean_connection(
    pg_database: ProvisionedDatabase,
) -> None:
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        tenant = await new_tenant(db)
        with pytest.raises(RuntimeError):
            async with db.tenant(tenant) as s:
                pid = await s.fetch_val("SELECT pg_backend_pid()")
                await _insert_order(s, tenant, "o1")
                await s.execute("SET work_mem = '7MB'")  # session-level, by mistake
                await s.execute("SELECT set_config('app.tenant_id', %s, false)", (tenant,))
                raise RuntimeError("the caller's own failure")
        row = await _next_borrower(db)
        assert row["pid"] == pid  # the same connection, reset by the pool
        assert not row["t"] and row["work_mem"] == "4MB"
        async with db.tenant(tenant) as s:
            assert await s.fetch_val("SELECT count(*) FROM order_state") == 0  # rolled back


async def test_a_failed_statement_keeps_its_error_and_the_next_transaction_works(
    database: Database, tenant: str
) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        async with database.tenant(tenant) as s:
            await s.execute("SELECT 1/0")
    async with database.tenant(tenant) as s:
        assert await s.fetch_val("SELECT current_setting('app.tenant_id', true)") == tenant


async def test_a_savepoint_still_nests_inside_the_tenant_transaction(
    database: Database, tenant: str
) -> None:
    async with database.tenant(tenant) as s:
        await _insert_order(s, tenant, "kept")
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with s.savepoint():
                await _insert_order(s, tenant, "kept")
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 1
    async with database.tenant(tenant) as s:
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 1  # committed


async def test_each_end_resets_the_session_in_the_same_round_trip(
    pg_database: ProvisionedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the connection is sent: the begin with its tenant, the statement, and one
    end that also resets: no separate RESET ALL on either way out."""
    sent: list[str] = []
    real = psycopg.AsyncConnection.execute

    async def spy(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query if isinstance(query, str) else query.as_string(self))
        return await real(self, query, *args, **kwargs)

    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        tenant = await new_tenant(db)
        monkeypatch.setattr(psycopg.AsyncConnection, "execute", spy)
        async with db.tenant(tenant) as s:
            await s.fetch_val("SELECT 1")
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with db.tenant(tenant) as s:
                await s.execute("SELECT 1/0")
    begin = f"BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true)"
    assert [q for q in sent if q] == [  # "": the pool's liveness check of a new connection
        begin,
        "SELECT 1",
        "COMMIT; RESET ALL",
        begin,
        "SELECT 1/0",
        "ROLLBACK; RESET ALL",
    ]
