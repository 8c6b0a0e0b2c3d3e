"""Receipts are append-only at the database level."""

from __future__ import annotations

import psycopg
import pytest

from autobiz.db.database import Database
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO receipts (tenant_id, workflow_id, run_id, activity_id, tool, tool_version, "
    "side_effect_class, internal_key, external_key, request_hash, provider, status, "
    "amount_minor, currency) VALUES (%s, 'order:t:1', 'run', '1', 'stripe.capture_payment', '1', "
    "'FINANCIAL', %s, 'autobiz:x', 'h', 'stripe', 'succeeded', 1500, 'USD')"
)


async def test_app_role_cannot_update_or_delete_receipts(database: Database, tenant: str) -> None:
    async with database.tenant(tenant) as s:
        await s.execute(INSERT, (tenant, "k1"))
    for stmt in (
        "UPDATE receipts SET status = 'void'",
        "DELETE FROM receipts",
        "TRUNCATE receipts",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with database.tenant(tenant) as s:
                await s.execute(stmt)
    async with database.tenant(tenant) as s:
        row = await s.fetch_one(
            "SELECT status, amount_minor FROM receipts WHERE internal_key = 'k1'"
        )
    assert row == {"status": "succeeded", "amount_minor": 1500}


async def test_even_the_owner_cannot_rewrite_a_receipt(
    pg_database: ProvisionedDatabase, database: Database, tenant: str
) -> None:
    async with database.tenant(tenant) as s:
        await s.execute(INSERT, (tenant, "k2"))
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await c.execute("UPDATE receipts SET status = 'void' WHERE internal_key = 'k2'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await c.execute("DELETE FROM receipts WHERE internal_key = 'k2'")


async def test_financial_receipt_needs_amount_and_currency(database: Database, tenant: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        async with database.tenant(tenant) as s:
            await s.execute(
                "INSERT INTO receipts (tenant_id, workflow_id, run_id, activity_id, tool, "
                "tool_version, side_effect_class, internal_key, external_key, request_hash, "
                "provider, status) VALUES (%s, 'w', 'r', '1', 't', '1', 'FINANCIAL', 'k3', 'e', "
                "'h', 'stripe', 'succeeded')",
                (tenant,),
            )
