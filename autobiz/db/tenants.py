"""Tenants come from their BusinessConfig files: every configured tenant has its row
(the foreign key of every tenant table points at it), created on the owner connection
because the application role cannot see, let alone create, another tenant's row."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from kernel.config import BusinessConfig


def sync_tenants(dsn: str, configs: Iterable[BusinessConfig]) -> list[str]:
    """Insert the missing tenants, refresh the names of the others; returns the new ones."""
    created: list[str] = []
    with psycopg.connect(dsn, autocommit=False) as conn:
        for config in configs:
            row = conn.execute(
                "INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)"
                " ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name"
                " RETURNING (xmax = 0) AS inserted",
                (config.tenant, config.name or config.tenant),
            ).fetchone()
            if row is not None and row[0]:
                created.append(config.tenant)
        conn.commit()
    return created
