"""Gauges read from the database, on the worker's Prometheus endpoint.

The approval backlog (depth and oldest age, per tenant and action), the invariant
incidents not yet resolved, the drift rows still to act on and the circuit breakers'
states are states of the ledger, not events a workflow sees, so no counter can tell
them. (A breaker's state is also set by the worker that moves it; read from the shared
table here, a worker that stopped calling a provider does not keep reporting the OPEN it
last saw, and an OPEN past its ``open_until`` reads half-open: the next call probes.)
A task in each worker process reads them every ``settings.worker.metrics_refresh_seconds``
for the tenants the worker serves and sets the gauges of ``kernel.metrics`` on the runtime's meter.

Why a periodic task in the worker and not a collector at scrape time: the SDK's endpoint
has no scrape hook, and a second endpoint per worker would be one more port to bind,
secure and scrape. The price is staleness of at most one interval, and
``autobiz_metrics_refresh_timestamp_seconds`` tells it. Every worker reports the same
values, so aggregate with ``max by (...)``, not ``sum``.

Labels stay bounded: ``tenant`` is one of the worker's BusinessConfigs, ``action`` an
approval action named in code, ``kind`` an invariant (``INV-0n``, checked by the table)
or a drift kind named in code, ``status`` a value the table's CHECK allows. A series that
empties is set to 0 rather than left at its last value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from temporalio.common import MetricGaugeFloat, MetricMeter

from autobiz.breakers.machine import BreakerState
from autobiz.breakers.metrics import BreakerMetrics
from autobiz.db.database import Database, TenantSession
from autobiz.errors import DatabaseError
from kernel.metrics import (
    APPROVAL_BACKLOG,
    APPROVAL_BACKLOG_OLDEST,
    DRIFT_OPEN,
    GAUGES_REFRESHED,
    INVARIANT_VIOLATIONS_OPEN,
    MetricSpec,
)

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]

_BACKLOG = """
SELECT action, count(*) AS depth, min(requested_at) AS oldest
  FROM hitl_requests WHERE tenant_id = %s AND status = 'pending' GROUP BY action
"""
_INCIDENTS = """
SELECT kind, status, count(*) AS n
  FROM incidents WHERE tenant_id = %s AND status IN ('open', 'acknowledged')
 GROUP BY kind, status
"""
_DRIFT = """
SELECT kind, status, count(*) AS n
  FROM reconciliation WHERE tenant_id = %s AND status IN ('open', 'pending_approval')
 GROUP BY kind, status
"""

_BREAKERS = """
SELECT provider, state, open_until FROM circuit_breakers WHERE tenant_id = %s
"""


class _Gauge:
    """A gauge that remembers the label sets it has set, so an emptied one reads 0."""

    def __init__(self, meter: MetricMeter, spec: MetricSpec) -> None:
        self._gauge: MetricGaugeFloat = meter.create_gauge_float(spec.sdk_name, spec.help)
        self._seen: set[Labels] = set()

    def publish(self, values: dict[Labels, float], tenant: str) -> None:
        """Set ``values`` and zero what this tenant had before but no longer has."""
        stale = {k for k in self._seen if ("tenant", tenant) in k} - values.keys()
        for key in stale:
            self._gauge.set(0.0, dict(key))
        for key, value in values.items():
            self._gauge.set(value, dict(key))
        self._seen |= values.keys()


def _key(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


class LedgerGauges:
    def __init__(self, meter: MetricMeter, db: Database, tenants: Iterable[str]) -> None:
        self._db = db
        self._tenants = sorted(tenants)
        self._backlog = _Gauge(meter, APPROVAL_BACKLOG)
        self._oldest = _Gauge(meter, APPROVAL_BACKLOG_OLDEST)
        self._incidents = _Gauge(meter, INVARIANT_VIOLATIONS_OPEN)
        self._drift = _Gauge(meter, DRIFT_OPEN)
        self._breakers = BreakerMetrics(meter)
        self._refreshed = meter.create_gauge_float(GAUGES_REFRESHED.sdk_name, GAUGES_REFRESHED.help)

    async def refresh(self) -> None:
        """Read every tenant's rows and set the gauges (one transaction per tenant)."""
        for tenant in self._tenants:
            async with self._db.tenant(tenant) as session:
                await self._refresh_tenant(session, tenant)
        self._refreshed.set(time.time(), {})

    async def _refresh_tenant(self, session: TenantSession, tenant: str) -> None:
        now: datetime = await session.fetch_val("SELECT now()")
        depth: dict[Labels, float] = {}
        oldest: dict[Labels, float] = {}
        for row in await session.fetch_all(_BACKLOG, (tenant,)):
            key = _key(tenant=tenant, action=row["action"])
            depth[key] = float(row["depth"])
            oldest[key] = max((now - row["oldest"]).total_seconds(), 0.0)
        self._backlog.publish(depth, tenant)
        self._oldest.publish(oldest, tenant)
        for row in await session.fetch_all(_BREAKERS, (tenant,)):
            state = BreakerState(row["state"])
            if state is BreakerState.OPEN and row["open_until"] <= now:
                state = BreakerState.HALF_OPEN
            self._breakers.state(row["provider"], tenant, state)
        for gauge, query in ((self._incidents, _INCIDENTS), (self._drift, _DRIFT)):
            rows = await session.fetch_all(query, (tenant,))
            gauge.publish(
                {
                    _key(tenant=tenant, kind=r["kind"], status=r["status"]): float(r["n"])
                    for r in rows
                },
                tenant,
            )

    async def run(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed pass is logged and
        the gauges keep their values (the refresh timestamp shows how old they are)."""
        while True:
            try:
                await self.refresh()
            except DatabaseError as exc:
                log.warning("metrics refresh failed, database unavailable: %s", exc.message)
            except Exception:
                log.exception("metrics refresh failed")
            await asyncio.sleep(interval)
