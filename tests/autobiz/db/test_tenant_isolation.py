"""Row-level security, driven through the real database as the application role."""

from __future__ import annotations

import psycopg
import pytest

from autobiz.db.database import Database
from autobiz.errors import TenantContextError
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration

TENANT_TABLES = [
    "tenants",
    "order_state",
    "receipts",
    "idempotency_keys",
    "event_store",
    "hitl_requests",
    "reconciliation",
    "traces",
    "daily_metrics",
    "audit_log",
    "approver_keys",
    "incidents",
]


async def _add_order(db: Database, tenant: str, order_id: str, state: str = "paid") -> None:
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO order_state (tenant_id, order_id, state, state_hash) "
            "VALUES (%s, %s, %s, 'h')",
            (tenant, order_id, state),
        )


async def test_app_role_catalog_facts(pg_database: ProvisionedDatabase) -> None:
    async with await psycopg.AsyncConnection.connect(pg_database.app_dsn) as conn:
        cur = await conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert await cur.fetchone() == (False, False, False, False)
        cur = await conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) = current_user, "
            "c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(%s)",
            (TENANT_TABLES,),
        )
        rows = {r[0]: r[1:] for r in await cur.fetchall()}
    assert set(rows) == set(TENANT_TABLES)
    for table, (owned, rls, forced) in rows.items():
        assert not owned, f"app role owns {table}"
        assert rls and forced, f"RLS not enabled and forced on {table}"


async def test_every_table_with_tenant_id_is_covered(pg_database: ProvisionedDatabase) -> None:
    """A future table with a tenant_id column must join the RLS list too."""
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn) as conn:
        cur = await conn.execute(
            "SELECT c.relname, c.relforcerowsecurity, a.attnotnull FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attname = 'tenant_id'"
        )
        rows = await cur.fetchall()
    assert rows
    for table, forced, not_null in rows:
        assert forced, f"{table} has tenant_id but RLS is not forced"
        assert not_null, f"{table}.tenant_id is nullable"


async def test_tenant_cannot_read_update_or_insert_for_another(database: Database) -> None:
    a, b = await new_tenant(database, "a"), await new_tenant(database, "b")
    await _add_order(database, a, "1001")
    await _add_order(database, b, "2001")

    async with database.tenant(a) as s:
        rows = await s.fetch_all("SELECT tenant_id, order_id FROM order_state")
        assert rows == [{"tenant_id": a, "order_id": "1001"}]
        assert await s.fetch_val("SELECT count(*) FROM tenants") == 1
        # Updating B's row touches nothing: RLS hides it.
        touched = await s.execute(
            "UPDATE order_state SET state = 'hijacked' WHERE order_id = '2001'"
        )
        assert touched == 0

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with database.tenant(a) as s:
            await s.execute(
                "INSERT INTO order_state (tenant_id, order_id, state, state_hash) "
                "VALUES (%s, '2002', 'paid', 'h')",
                (b,),
            )
    # Moving one's own row into another tenant is refused by WITH CHECK.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with database.tenant(a) as s:
            await s.execute("UPDATE order_state SET tenant_id = %s WHERE order_id = '1001'", (b,))

    async with database.tenant(b) as s:
        assert await s.fetch_val("SELECT state FROM order_state WHERE order_id = '2001'") == "paid"
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 1


async def test_no_tenant_set_sees_nothing_and_cannot_insert(
    pg_database: ProvisionedDatabase, database: Database
) -> None:
    a = await new_tenant(database, "a")
    await _add_order(database, a, "1")
    async with await psycopg.AsyncConnection.connect(pg_database.app_dsn, autocommit=True) as conn:
        for table in TENANT_TABLES:
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            assert await cur.fetchone() == (0,), table
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(
                "INSERT INTO order_state (tenant_id, order_id, state, state_hash) "
                "VALUES (%s, '2', 'paid', 'h')",
                (a,),
            )


async def test_pooled_connection_carries_no_tenant_to_next_borrower(
    pg_database: ProvisionedDatabase,
) -> None:
    # A pool of exactly one connection: the second borrower must get the same one.
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, min_size=1, max_size=1) as db:
        a = await new_tenant(db, "a")
        await _add_order(db, a, "1")
        async with db.tenant(a) as s:
            pid_a = await s.fetch_val("SELECT pg_backend_pid()")
            assert await s.fetch_val("SELECT count(*) FROM order_state") == 1
        # Even a session-level SET issued by mistake does not survive the return to the pool.
        async with db.tenant(a) as s:
            await s.execute("SELECT set_config('app.tenant_id', %s, false)", (a,))
        async with db._connection(db._app_pool) as conn:  # the raw next borrower
            cur = await conn.execute(
                "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS t"
            )
            row = await cur.fetchone()
            assert row is not None
            assert row["pid"] == pid_a
            assert not row["t"]
            cur = await conn.execute("SELECT count(*) AS n FROM order_state")
            assert await cur.fetchone() == {"n": 0}


async def test_foreign_key_to_another_tenants_row_is_refused_without_revealing_it(
    database: Database,
) -> None:
    a, b = await new_tenant(database, "a"), await new_tenant(database, "b")
    await _add_order(database, b, "secret-order", state="b-private-state")
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as info:
        async with database.tenant(a) as s:
            await s.execute(
                "INSERT INTO reconciliation (tenant_id, run_id, kind, order_id, entity_ref, "
                "financial, action) VALUES (%s, 'r1', 'drift', 'secret-order', 'x', false, 'none')",
                (a,),
            )
    message = str(info.value) + str(info.value.diag.message_detail)
    assert b not in message
    assert "b-private-state" not in message
    # Referencing one's own order works, so the refusal above is about tenancy.
    await _add_order(database, a, "own-order")
    async with database.tenant(a) as s:
        await s.execute(
            "INSERT INTO reconciliation (tenant_id, run_id, kind, order_id, entity_ref, "
            "financial, action) VALUES (%s, 'r1', 'drift', 'own-order', 'x', false, 'none')",
            (a,),
        )


async def test_data_layer_requires_a_valid_tenant(database: Database) -> None:
    for bad in ["", "A", "x", "a b", "' OR 1=1 --", "a" * 64]:
        with pytest.raises(TenantContextError):
            async with database.tenant(bad):
                pass
    with pytest.raises(TenantContextError, match="reason"):
        async with database.admin("  "):
            pass


async def test_admin_path_must_be_configured(pg_database: ProvisionedDatabase) -> None:
    async with Database(pg_database.app_dsn, None) as db:
        with pytest.raises(TenantContextError) as info:
            async with db.admin("report"):
                pass
        assert info.value.code == "ADMIN_PATH_DISABLED"
