"""The data layer every other part reaches PostgreSQL through.

There are exactly two doors:

* ``Database.tenant(tenant_id)`` — a transaction on the application role (no table
  ownership, no BYPASSRLS) with ``app.tenant_id`` set transaction-locally, so row-level
  security scopes every statement and nothing survives into the pooled connection's
  next borrower;
* ``Database.admin(reason)`` — the explicitly named cross-tenant path on the owner's
  connection, for migrations-adjacent work and operator views; every use is logged.

No method hands out a bare connection, so a query without a tenant context cannot be
written by accident.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from autobiz.errors import DatabaseError, TenantContextError
from kernel.codes import ErrorCode

log = logging.getLogger(__name__)

TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")

Params = Sequence[Any] | dict[str, Any] | None
Query = str | bytes | sql.SQL | sql.Composed

Row = dict[str, Any]


def validate_tenant_id(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID_RE.match(tenant_id):
        raise TenantContextError(
            f"invalid tenant id {tenant_id!r}: use 2-63 lowercase letters, digits or dashes"
        )
    return tenant_id


class TenantSession:
    """One transaction, scoped to one tenant (or to the admin path)."""

    def __init__(self, conn: AsyncConnection[Row], tenant_id: str | None) -> None:
        self._conn = conn
        self.tenant_id = tenant_id

    async def execute(self, query: Query, params: Params = None) -> int:
        """Run a statement; return the number of rows it touched."""
        cur = await self._conn.execute(query, params)
        return cur.rowcount

    async def fetch_all(self, query: Query, params: Params = None) -> list[Row]:
        cur = await self._conn.execute(query, params)
        return await cur.fetchall()

    async def fetch_one(self, query: Query, params: Params = None) -> Row | None:
        cur = await self._conn.execute(query, params)
        return await cur.fetchone()

    async def fetch_val(self, query: Query, params: Params = None) -> Any:
        row = await self.fetch_one(query, params)
        return None if row is None else next(iter(row.values()))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: an error inside rolls back to here, not the whole session."""
        async with self._conn.transaction():
            yield


# A connection handed back less than this long ago was working then: it is lent again
# without the pool's liveness round trip (one per transaction otherwise). If it died in
# between, the transaction's first statement fails before anything was done, and
# ``Database`` begins once more on another connection (``_begin``).
FRESH_SECONDS = 5.0
_returned_at: weakref.WeakKeyDictionary[AsyncConnection[Row], float] = weakref.WeakKeyDictionary()
# Set while beginning again after a dead connection: every connection lent is checked.
_check_every: ContextVar[bool] = ContextVar("autobiz_db_check_every", default=False)


async def _end(conn: AsyncConnection[Row], *, commit: bool) -> None:
    """End the transaction and reset the session in one round trip (``COMMIT; RESET
    ALL``, or ``ROLLBACK; RESET ALL`` after the caller's error), so that even a plain SET
    issued by mistake never reaches the next borrower. A connection that cannot be reset
    is closed: the pool discards it rather than lend it dirty. A failed COMMIT is raised
    (after the reset it skipped)."""
    try:
        await conn.execute("COMMIT; RESET ALL" if commit else "ROLLBACK; RESET ALL")
    except psycopg.Error as exc:
        await _reset_or_close(conn)
        if commit:
            raise
        log.warning("rollback after an error failed: %s", exc)
    finally:
        _returned_at[conn] = time.monotonic()


async def _reset_or_close(conn: AsyncConnection[Row]) -> None:
    if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        try:
            await conn.execute("RESET ALL")
            return
        except psycopg.Error:
            pass
    await conn.close()


def _begin_sql(tenant_id: str | None) -> sql.SQL | sql.Composed:
    """``BEGIN`` and the transaction-local tenant in one round trip (a simple query; the
    id, validated already, goes in as a quoted literal)."""
    if tenant_id is None:
        return sql.SQL("BEGIN")
    return sql.SQL("BEGIN; SELECT set_config('app.tenant_id', {}, true)").format(
        sql.Literal(tenant_id)
    )


async def _check_unless_fresh(conn: AsyncConnection[Row]) -> None:
    returned = _returned_at.get(conn)
    fresh = returned is not None and time.monotonic() - returned < FRESH_SECONDS
    if fresh and not _check_every.get():
        return
    await AsyncConnectionPool.check_connection(conn)


class Database:
    """Pools for the application role and the owner; open once per process."""

    def __init__(
        self,
        app_dsn: str,
        admin_dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
    ) -> None:
        self._timeout = timeout
        common: dict[str, Any] = {
            "kwargs": {"autocommit": True, "row_factory": dict_row},
            "open": False,
            "timeout": timeout,
            "check": _check_unless_fresh,
        }
        self._app_pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
            app_dsn, min_size=min_size, max_size=max_size, name="autobiz-app", **common
        )
        self._admin_pool: AsyncConnectionPool[AsyncConnection[Row]] | None = None
        if admin_dsn is not None:
            self._admin_pool = AsyncConnectionPool(
                admin_dsn, min_size=0, max_size=2, name="autobiz-admin", **common
            )

    async def open(self) -> Self:
        try:
            await self._app_pool.open(wait=True, timeout=self._timeout)
            if self._admin_pool is not None:
                await self._admin_pool.open()
        except PoolTimeout:
            await self.close()
            raise DatabaseError(
                "cannot connect to PostgreSQL as the application role",
                code=ErrorCode.DATABASE_UNREACHABLE,
                hint="is the stack up (`autobiz dev up`) and migrated (`autobiz db migrate`)?",
            ) from None
        return self

    async def close(self) -> None:
        await self._app_pool.close()
        if self._admin_pool is not None:
            await self._admin_pool.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def tenant(self, tenant_id: str) -> AsyncIterator[TenantSession]:
        """A transaction on the application role, scoped to ``tenant_id`` by RLS."""
        validate_tenant_id(tenant_id)
        async with self._begin(self._app_pool, tenant_id) as conn:
            yield TenantSession(conn, tenant_id)

    @asynccontextmanager
    async def admin(self, reason: str) -> AsyncIterator[TenantSession]:
        """The named cross-tenant path (owner connection). ``reason`` is logged."""
        if self._admin_pool is None:
            raise TenantContextError(
                "the admin path is not configured for this process",
                code=ErrorCode.ADMIN_PATH_DISABLED,
            )
        if not reason.strip():
            raise TenantContextError(
                "the admin path needs a reason", code=ErrorCode.ADMIN_REASON_REQUIRED
            )
        log.info("database admin path used: %s", reason)
        async with self._begin(self._admin_pool, None) as conn:
            yield TenantSession(conn, None)

    @asynccontextmanager
    async def _begin(
        self, pool: AsyncConnectionPool[AsyncConnection[Row]], tenant_id: str | None
    ) -> AsyncIterator[AsyncConnection[Row]]:
        """A transaction begun (and scoped to ``tenant_id``): a connection lent without a
        check that turns out dead fails here, before the caller did anything, and the
        transaction is begun again on a connection the pool checks."""
        for attempt in (1, 2):
            stack = AsyncExitStack()
            token = _check_every.set(attempt > 1)
            try:
                conn = await stack.enter_async_context(self._connection(pool))
                await conn.execute(_begin_sql(tenant_id))
            except (psycopg.OperationalError, DatabaseError) as exc:
                failure: BaseException = exc
                try:  # hands the connection back; _connection rewraps the error
                    await stack.__aexit__(type(exc), exc, exc.__traceback__)
                except (psycopg.OperationalError, DatabaseError) as wrapped:
                    failure = wrapped
                if attempt == 2 or not _broken_connection(failure):
                    raise failure from None
                log.info("a pooled connection was found closed; beginning again")
                continue
            finally:
                _check_every.reset(token)
            async with stack:
                try:
                    yield conn
                except BaseException:
                    await _end(conn, commit=False)
                    raise
                await _end(conn, commit=True)
            return

    @asynccontextmanager
    async def _connection(
        self, pool: AsyncConnectionPool[AsyncConnection[Row]]
    ) -> AsyncIterator[AsyncConnection[Row]]:
        try:
            async with pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DatabaseError(
                f"database unavailable: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}",
                code=ErrorCode.DATABASE_UNAVAILABLE,
            ) from exc


def _broken_connection(exc: BaseException) -> bool:
    """The error says the connection itself is gone (not a pool timeout, not SQL)."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else exc
    return isinstance(cause, psycopg.OperationalError) and not isinstance(cause, PoolTimeout)
