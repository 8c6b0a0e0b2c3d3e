"""The trace store (INV-04): a run's trace entries and cost, persisted redacted.

Rows are keyed by ``(tenant, workflow_id, run_id, seq)``, so persisting the same batch
twice (an activity retry) writes nothing new. Every detail is allowlisted and scanned
again here, whatever the workflow did.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from autobiz.db.database import Database, TenantSession
from kernel.cost import MICROS_PER_USD
from kernel.redaction import redact_detail, redact_text
from kernel.state import TraceEntry

_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_ROWS_PER_INSERT = 500  # 10 parameters a row, well under PostgreSQL's 65 535


class TraceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def persist(
        self, tenant_id: str, workflow_id: str, run_id: str, entries: list[TraceEntry]
    ) -> int:
        async with self._db.tenant(tenant_id) as s:
            return await self.persist_in(s, tenant_id, workflow_id, run_id, entries)

    async def persist_in(
        self,
        s: TenantSession,
        tenant_id: str,
        workflow_id: str,
        run_id: str,
        entries: list[TraceEntry],
    ) -> int:
        """``persist`` inside the caller's transaction."""
        # One multi-row INSERT per chunk, not one round trip per entry (bench/README.md:
        # the per-entry inserts were most of persist_trace's cost).
        written = 0
        for start in range(0, len(entries), _ROWS_PER_INSERT):
            chunk = entries[start : start + _ROWS_PER_INSERT]
            params: list[Any] = []
            for e in chunk:
                params += (
                    tenant_id,
                    workflow_id,
                    run_id,
                    e.seq,
                    e.kind,
                    e.tool,
                    redact_text(e.outcome),
                    Jsonb(redact_detail(e.detail)),
                    Decimal(e.cost_micros) / MICROS_PER_USD,
                    e.at,
                )
            written += await s.execute(
                "INSERT INTO traces (tenant_id, workflow_id, run_id, seq, kind, tool, "
                "outcome, detail, cost_usd, created_at) VALUES "
                + ", ".join([_ROW] * len(chunk))
                + " ON CONFLICT (tenant_id, workflow_id, run_id, seq) DO NOTHING",
                params,
            )
        return written

    async def load(self, tenant_id: str, workflow_id: str) -> list[dict[str, Any]]:
        async with self._db.tenant(tenant_id) as s:
            return await s.fetch_all(
                "SELECT run_id, seq, kind, tool, outcome, detail, cost_usd, created_at "
                "FROM traces WHERE tenant_id = %s AND workflow_id = %s ORDER BY run_id, seq",
                (tenant_id, workflow_id),
            )

    async def run_cost_usd(self, tenant_id: str, workflow_id: str) -> Decimal:
        async with self._db.tenant(tenant_id) as s:
            value = await s.fetch_val(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM traces "
                "WHERE tenant_id = %s AND workflow_id = %s",
                (tenant_id, workflow_id),
            )
        return Decimal(value)
