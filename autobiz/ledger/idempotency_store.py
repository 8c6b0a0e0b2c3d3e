"""The idempotency store (P1-R06), tenant-scoped through ``Database.tenant``.

``run(...)``: the first call executes and records its result; a duplicate within the
window (24 h by default) returns the recorded result without executing; after the window
it executes again (provider writes then look up existing objects first). Each row keeps
``first_seen_at``, ``last_seen_at`` and ``hit_count``. An attempt that is still running
(another worker) makes a duplicate fail with a retryable error until it finishes or its
lease runs out; a failed attempt lets the next one execute.

``also`` (the side-effect runner's receipt) is written in the same transaction as the
``succeeded`` finish, so the two are stored together or not at all; when that
transaction fails the key is released as ``failed`` and the retry executes again under
the same external key (the provider answers it from its own idempotency).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from autobiz.db.database import Database, TenantSession
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Written in the finish's transaction (``run(also=...)``).
AlsoWrite = Callable[[TenantSession], Awaitable[None]]
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_LEASE = timedelta(minutes=5)


def utc_now() -> datetime:
    return datetime.now(UTC)


class IdempotencyInProgressError(AutobizError):
    """Retryable: the same call is executing elsewhere right now."""

    code = ErrorCode.IDEMPOTENCY_IN_PROGRESS


@dataclass(frozen=True)
class IdempotentOutcome:
    result: dict[str, Any]
    replayed: bool
    hit_count: int
    first_seen_at: datetime


@dataclass(frozen=True)
class KeyRecord:
    internal_key: str
    external_key: str
    tool: str
    status: str
    result: dict[str, Any] | None
    first_seen_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    hit_count: int


class IdempotencyStore:
    def __init__(
        self,
        db: Database,
        *,
        window: timedelta = DEFAULT_WINDOW,
        lease: timedelta = DEFAULT_LEASE,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self.window = window
        self.lease = lease
        self._clock = clock

    async def run(
        self,
        tenant_id: str,
        *,
        internal_key: str,
        external_key: str,
        tool: str,
        execute: Callable[[], Awaitable[dict[str, Any]]],
        lease: timedelta | None = None,
        also: AlsoWrite | None = None,
        with_claim: AlsoWrite | None = None,
    ) -> IdempotentOutcome:
        """``lease``: how long another attempt's claim holds (at most the store's lease);
        an activity passes its start-to-close timeout, after which Temporal has given up
        on that attempt (a killed worker) and the retry may take over. ``also``: written
        in the ``succeeded`` finish's transaction (see the module docstring).
        ``with_claim``: written in the claim's transaction, whatever it decides; when
        the claim raises it is not stored."""
        held = self.lease if lease is None else min(lease, self.lease)
        recorded = await self._claim(tenant_id, internal_key, external_key, tool, held, with_claim)
        if recorded is not None:
            return recorded
        try:
            result = await execute()
        except BaseException:
            await self._finish(tenant_id, internal_key, "failed", None)
            raise
        try:
            first_seen = await self._finish(tenant_id, internal_key, "succeeded", result, also)
        except BaseException:
            await self._release(tenant_id, internal_key)
            raise
        return IdempotentOutcome(result, replayed=False, hit_count=0, first_seen_at=first_seen)

    async def get(self, tenant_id: str, internal_key: str) -> KeyRecord | None:
        async with self._db.tenant(tenant_id) as s:
            row = await s.fetch_one(
                "SELECT internal_key, external_key, tool, status, result, first_seen_at, "
                "last_seen_at, expires_at, hit_count FROM idempotency_keys "
                "WHERE tenant_id = %s AND internal_key = %s",
                (tenant_id, internal_key),
            )
        return None if row is None else KeyRecord(**row)

    async def _claim(
        self,
        tenant_id: str,
        internal_key: str,
        external_key: str,
        tool: str,
        lease: timedelta,
        with_claim: AlsoWrite | None = None,
    ) -> IdempotentOutcome | None:
        """Claim the key for execution, or return the recorded outcome of a duplicate."""
        now = self._clock()
        async with self._db.tenant(tenant_id) as s:
            if with_claim is not None:
                await with_claim(s)
            inserted = await s.execute(
                "INSERT INTO idempotency_keys (tenant_id, internal_key, external_key, tool, "
                "status, first_seen_at, last_seen_at, expires_at) "
                "VALUES (%s, %s, %s, %s, 'in_progress', %s, %s, %s) "
                "ON CONFLICT (tenant_id, internal_key) DO NOTHING",
                (tenant_id, internal_key, external_key, tool, now, now, now + self.window),
            )
            if inserted:
                return None
            row = await s.fetch_one(
                "SELECT status, result, first_seen_at, last_seen_at, expires_at, hit_count "
                "FROM idempotency_keys WHERE tenant_id = %s AND internal_key = %s FOR UPDATE",
                (tenant_id, internal_key),
            )
            assert row is not None
            fresh = now < row["expires_at"]
            if row["status"] == "succeeded" and fresh:
                hits = row["hit_count"] + 1
                await s.execute(
                    "UPDATE idempotency_keys SET hit_count = %s, last_seen_at = %s "
                    "WHERE tenant_id = %s AND internal_key = %s",
                    (hits, now, tenant_id, internal_key),
                )
                result = row["result"]
                if isinstance(result, str):  # pragma: no cover - jsonb comes back decoded
                    result = json.loads(result)
                return IdempotentOutcome(
                    dict(result or {}),
                    replayed=True,
                    hit_count=hits,
                    first_seen_at=row["first_seen_at"],
                )
            if row["status"] == "in_progress" and now < row["last_seen_at"] + lease:
                raise IdempotencyInProgressError(
                    f"{tool} with this key is executing elsewhere; retry later"
                )
            # Expired, failed, or an abandoned attempt: execute again (same external key).
            await s.execute(
                "UPDATE idempotency_keys SET status = 'in_progress', result = NULL, "
                "last_seen_at = %s, expires_at = %s WHERE tenant_id = %s AND internal_key = %s",
                (now, now + self.window, tenant_id, internal_key),
            )
        return None

    async def _release(self, tenant_id: str, internal_key: str) -> None:
        """After a failed ``succeeded`` finish: mark the key ``failed`` so the retry need
        not wait for the lease. Best effort: if this fails too, the lease runs out."""
        try:
            await self._finish(tenant_id, internal_key, "failed", None)
        except Exception as exc:
            log.warning("idempotency key left in progress until its lease ends: %r", exc)

    async def _finish(
        self,
        tenant_id: str,
        internal_key: str,
        status: str,
        result: dict[str, Any] | None,
        also: AlsoWrite | None = None,
    ) -> datetime:
        now = self._clock()
        async with self._db.tenant(tenant_id) as s:
            if also is not None:
                await also(s)
            first_seen: datetime = await s.fetch_val(
                "UPDATE idempotency_keys SET status = %s, result = %s, last_seen_at = %s "
                "WHERE tenant_id = %s AND internal_key = %s RETURNING first_seen_at",
                (status, None if result is None else Jsonb(result), now, tenant_id, internal_key),
            )
        return first_seen
