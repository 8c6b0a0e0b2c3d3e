"""Circuit breakers every worker process shares, kept in PostgreSQL.

Why PostgreSQL and not Redis: the workers need PostgreSQL already (idempotency keys,
receipts, the audit log), while nothing in AutoBiz uses Redis — a breaker in Redis would
make a second store every deployment must run, secure and back up, and the breaker would
be the only thing in it. PostgreSQL gives what a shared breaker needs: a row lock makes
each step of the state machine atomic across processes (``SELECT ... FOR UPDATE`` in one
short transaction), one clock for every worker (``clock_timestamp()``), row-level
security per tenant like every other tenant table, and the transition log and the
operator's audited reset in the same transaction as the change. The cost is a short
transaction before and after each provider call, small next to the call itself.

The store applies :mod:`autobiz.breakers.machine`; it does no state logic of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from autobiz.breakers.machine import (
    Admission,
    Breaker,
    BreakerState,
    Outcome,
    Policy,
    Transition,
    admit,
    record,
    reset,
)
from autobiz.db.database import Database, Row, TenantSession

_COLUMNS = [f.name for f in fields(Breaker)]


@dataclass(frozen=True)
class Step:
    """What one step did: the breaker after it and the transition it made, if any."""

    breaker: Breaker
    transition: Transition | None
    now: datetime


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker as ``autobiz breaker status`` shows it."""

    tenant_id: str
    provider: str
    breaker: Breaker
    changed_at: datetime
    now: datetime

    def as_json(self) -> dict[str, Any]:
        b = self.breaker
        retry = (b.open_until - self.now).total_seconds() if b.open_until else None
        return {
            "tenant": self.tenant_id,
            "provider": self.provider,
            "state": b.state.value,
            "calls": b.calls,
            "failures": b.failures,
            "window_start": _iso(b.window_start),
            "opened_at": _iso(b.opened_at),
            "open_until": _iso(b.open_until),
            "retry_in_seconds": round(retry, 3)
            if retry is not None and b.state is BreakerState.OPEN and retry > 0
            else None,
            "probes_in_flight": b.probes,
            "last_failure": b.last_failure,
            "changed_at": _iso(self.changed_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _breaker(row: Row) -> Breaker:
    values = {name: row[name] for name in _COLUMNS}
    values["state"] = BreakerState(values["state"])
    return Breaker(**values)


class BreakerStore:
    """The breakers of every (tenant, provider), one row each."""

    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy

    async def admit(
        self, tenant_id: str, provider: str, *, actor: str, detail: dict[str, Any]
    ) -> tuple[Admission, Step]:
        async with self.db.tenant(tenant_id) as session:
            # Closed (the usual case): no lock, no write.
            row = await _read(session, tenant_id, provider, lock=False)
            if row is not None and row["state"] == BreakerState.CLOSED:
                return Admission(True), Step(_breaker(row), None, row["now"])
            current, now = await _locked(session, tenant_id, provider)
            nxt, admission, transition = admit(current, now, self.policy)
            await _write(session, tenant_id, provider, current, nxt, transition, actor, detail)
            return admission, Step(nxt, transition, now)

    async def record(
        self,
        tenant_id: str,
        provider: str,
        outcome: Outcome,
        *,
        probe: bool,
        failure: str | None,
        actor: str,
        detail: dict[str, Any],
    ) -> Step:
        async with self.db.tenant(tenant_id) as session:
            current, now = await _locked(session, tenant_id, provider)
            nxt, transition = record(
                current, now, self.policy, outcome, probe=probe, failure=failure
            )
            await _write(session, tenant_id, provider, current, nxt, transition, actor, detail)
            return Step(nxt, transition, now)

    async def reset(self, tenant_id: str, provider: str, *, actor: str, reason: str) -> Step:
        """Close the breaker now; the reset is an ``audit_log`` row whatever the state was."""
        async with self.db.tenant(tenant_id) as session:
            current, now = await _locked(session, tenant_id, provider)
            nxt, transition = reset(current, now)
            detail = {"reason": reason, "from_state": current.state.value}
            await _write(session, tenant_id, provider, current, nxt, transition, actor, detail)
            await session.execute(
                "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
                "VALUES (%s, %s, 'breaker.reset', 'done', %s)",
                (tenant_id, actor, json.dumps({"provider": provider, **detail})),
            )
            return Step(nxt, transition, now)

    async def status(self, tenant_id: str, provider: str | None = None) -> list[BreakerStatus]:
        """The tenant's breakers (one provider's, if given) that have seen a call."""
        async with self.db.tenant(tenant_id) as session:
            rows = await session.fetch_all(
                "SELECT *, clock_timestamp() AS now FROM circuit_breakers "
                "WHERE tenant_id = %s AND (%s::text IS NULL OR provider = %s) ORDER BY provider",
                (tenant_id, provider, provider),
            )
        return [
            BreakerStatus(r["tenant_id"], r["provider"], _breaker(r), r["changed_at"], r["now"])
            for r in rows
        ]

    async def events(self, tenant_id: str, provider: str, *, limit: int = 20) -> list[Row]:
        """The breaker's last transitions, newest first."""
        async with self.db.tenant(tenant_id) as session:
            return await session.fetch_all(
                "SELECT from_state, to_state, reason, actor, detail, created_at "
                "FROM breaker_events WHERE tenant_id = %s AND provider = %s "
                "ORDER BY event_id DESC LIMIT %s",
                (tenant_id, provider, limit),
            )


async def _read(session: TenantSession, tenant_id: str, provider: str, *, lock: bool) -> Row | None:
    return await session.fetch_one(
        "SELECT *, clock_timestamp() AS now FROM circuit_breakers "
        "WHERE tenant_id = %s AND provider = %s" + (" FOR UPDATE" if lock else ""),
        (tenant_id, provider),
    )


async def _locked(
    session: TenantSession, tenant_id: str, provider: str
) -> tuple[Breaker, datetime]:
    """The breaker's row, locked until the transaction ends (created closed if new), and
    the database's clock once the lock is held."""
    row = await _read(session, tenant_id, provider, lock=True)
    if row is None:
        await session.execute(
            "INSERT INTO circuit_breakers (tenant_id, provider) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            (tenant_id, provider),
        )
        row = await _read(session, tenant_id, provider, lock=True)
        assert row is not None
    now = await session.fetch_val("SELECT clock_timestamp()")
    return _breaker(row), now


async def _write(
    session: TenantSession,
    tenant_id: str,
    provider: str,
    current: Breaker,
    nxt: Breaker,
    transition: Transition | None,
    actor: str,
    detail: dict[str, Any],
) -> None:
    if nxt == current and transition is None:
        return
    # Column names come from the dataclass, values are parameters.
    assignments = ", ".join(f"{name} = %s" for name in _COLUMNS)
    values = [getattr(nxt, name) for name in _COLUMNS]
    values[_COLUMNS.index("state")] = nxt.state.value
    changed = ", changed_at = clock_timestamp()" if transition is not None else ""
    await session.execute(
        f"UPDATE circuit_breakers SET {assignments}, updated_at = clock_timestamp(){changed} "
        "WHERE tenant_id = %s AND provider = %s",
        (*values, tenant_id, provider),
    )
    if transition is not None:
        await session.execute(
            "INSERT INTO breaker_events "
            "(tenant_id, provider, from_state, to_state, reason, actor, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                tenant_id,
                provider,
                transition.from_state.value,
                transition.to_state.value,
                transition.reason,
                actor,
                json.dumps(detail, default=str),
            ),
        )
