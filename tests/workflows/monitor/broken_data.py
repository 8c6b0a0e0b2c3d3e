"""Deliberately broken rows, one kind per invariant, written as the code that breaks the
invariant would leave them (through the tenant's own session: RLS applies)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from autobiz.db.database import Database

NOW = datetime.now(UTC)
AGO = NOW - timedelta(days=3)


async def idempotency_key(
    db: Database,
    tenant: str,
    tool_ref: str,
    *,
    external_key: str | None = None,
    receipt_external_key: str | None = None,
    with_receipt: bool = False,
) -> str:
    """A succeeded idempotency record; with a receipt under the same internal key when
    asked (its external key ``receipt_external_key`` or the record's own)."""
    internal = uuid.uuid4().hex
    external = external_key or f"autobiz:{internal[:32]}"
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO idempotency_keys (tenant_id, internal_key, external_key, tool, status, "
            "result, first_seen_at, last_seen_at, expires_at) VALUES "
            "(%s, %s, %s, %s, 'succeeded', '{}', %s, %s, %s)",
            (tenant, internal, external, tool_ref, AGO, AGO, NOW + timedelta(days=1)),
        )
    if with_receipt:
        name, _, version = tool_ref.partition("@")
        await receipt(
            db,
            tenant,
            f"order:{tenant}:o-{internal[:6]}",
            name,
            version,
            "WRITE",
            internal_key=internal,
            external_key=receipt_external_key or external,
        )
    return internal


async def receipt(
    db: Database,
    tenant: str,
    workflow_id: str,
    tool: str,
    version: str = "1",
    side_effect: str = "FINANCIAL",
    *,
    amount_minor: int | None = None,
    internal_key: str | None = None,
    external_key: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    key = internal_key or uuid.uuid4().hex
    async with db.tenant(tenant) as s:
        receipt_id = await s.fetch_val(
            "INSERT INTO receipts (tenant_id, workflow_id, run_id, activity_id, tool, "
            "tool_version, side_effect_class, internal_key, external_key, request_hash, "
            "provider, status, amount_minor, currency, details) VALUES "
            "(%s, %s, 'run-1', '1', %s, %s, %s, %s, %s, %s, %s, 'succeeded', %s, %s, %s) "
            "RETURNING receipt_id",
            (
                tenant,
                workflow_id,
                tool,
                version,
                side_effect,
                key,
                external_key or f"autobiz:{key[:32]}",
                key,
                tool.split(".")[0],
                amount_minor if side_effect == "FINANCIAL" else None,
                "USD" if side_effect == "FINANCIAL" else None,
                Jsonb(details or {}),
            ),
        )
    return int(receipt_id)


async def approval(
    db: Database,
    tenant: str,
    workflow_id: str,
    *,
    status: str = "approved",
    expires_at: datetime | None = None,
) -> str:
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO hitl_requests (request_id, tenant_id, workflow_id, action, "
            "required_role, status, requested_at, expires_at) "
            "VALUES (%s, %s, %s, 'refund', 'finance', %s, %s, %s)",
            (request_id, tenant, workflow_id, status, AGO, expires_at or NOW + timedelta(days=1)),
        )
    return request_id


async def order(
    db: Database,
    tenant: str,
    order_id: str,
    state: str,
    *,
    updated_at: datetime = AGO,
    workflow_id: str | None = None,
) -> None:
    data = {"workflow_id": workflow_id} if workflow_id else {}
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO order_state (tenant_id, order_id, state, state_hash, data, updated_at) "
            "VALUES (%s, %s, %s, 'h', %s, %s)",
            (tenant, order_id, state, Jsonb(data), updated_at),
        )


async def trace(
    db: Database,
    tenant: str,
    workflow_id: str,
    *,
    tool: str | None = None,
    cost_usd: str = "0",
    kind: str | None = None,
) -> None:
    kind = kind or ("tool_succeeded" if tool else "run_started")
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO traces (tenant_id, workflow_id, run_id, seq, kind, tool, outcome, "
            "cost_usd) VALUES (%s, %s, 'run-1', "
            "(SELECT COALESCE(max(seq), 0) + 1 FROM traces WHERE tenant_id = %s "
            " AND workflow_id = %s), %s, %s, 'ok', %s)",
            (tenant, workflow_id, tenant, workflow_id, kind, tool, cost_usd),
        )
