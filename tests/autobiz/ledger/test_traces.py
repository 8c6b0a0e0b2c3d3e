"""Persisted traces are redacted, idempotent per seq, and carry the run's cost."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from autobiz.db.database import Database
from autobiz.ledger.traces import TraceStore
from kernel.state import TraceEntry
from tests.kernel.corpus import SECRETS

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


async def test_persisted_trace_has_zero_leaks_and_cost(database: Database, tenant: str) -> None:
    entries = [
        TraceEntry(
            seq=i + 1,
            at=T0,
            kind="tool_failed",
            outcome=f"error {secret}",
            tool="shopify.get_order@1",
            step="load",
            detail={"message": f"upstream said {secret}", "customer": secret},
            cost_micros=150,
        )
        for i, secret in enumerate(SECRETS.values())
    ]
    store = TraceStore(database)
    assert await store.persist(tenant, "order:t:1", "run-1", entries) == len(entries)
    assert await store.persist(tenant, "order:t:1", "run-1", entries) == 0  # retry: no dupes
    rows = await store.load(tenant, "order:t:1")
    assert len(rows) == len(entries)
    dumped = repr(rows)
    leaked = [name for name, secret in SECRETS.items() if secret in dumped]
    assert leaked == []
    assert all("customer" not in r["detail"] for r in rows)
    assert await store.run_cost_usd(tenant, "order:t:1") == Decimal("0.000150") * len(entries)


async def test_large_batches_persist_in_chunks_and_skip_known_seqs(
    database: Database, tenant: str
) -> None:
    """More entries than one INSERT carries; a retry after a partial write adds the rest."""
    entries = [
        TraceEntry(seq=i, at=T0, kind="decision", outcome="ok", cost_micros=1)
        for i in range(1, 1201)
    ]
    store = TraceStore(database)
    assert await store.persist(tenant, "order:t:big", "run-1", entries[:600]) == 600
    assert await store.persist(tenant, "order:t:big", "run-1", entries) == 600
    rows = await store.load(tenant, "order:t:big")
    assert [r["seq"] for r in rows] == list(range(1, 1201))
