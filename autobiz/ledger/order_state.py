"""The ``order_state`` projection's writes (DESIGN §4): one row per order, versioned.

Two ways in:

* ``write`` — the ``autobiz.order_state_write`` activity: from ``expected_version`` to
  the next one or ``ORDER_STATE_CONFLICT`` (the workflow reads the row and tries again);
* ``ride_in`` — a ``ProjectionWrite`` carried by the run's next tool call or trace
  persist (``kernel.state.RunState.carry``): the row is locked, this run's fields are
  merged over what it holds and the version moves on, so a writer that got there first
  costs no extra round trip to the workflow. What the workflow does after a conflict
  (read, merge its fields over the row, write) happens here inside one transaction.

Both are safe to repeat: a retried write finds the row where it left it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from psycopg.types.json import Jsonb
from temporalio.exceptions import ApplicationError

from autobiz.db.database import Database, TenantSession
from kernel.codes import ErrorCode
from kernel.contracts import OrderStateWrite, OrderStateWritten, ProjectionWrite

log = logging.getLogger(__name__)


# An order's first row (version 1); a row that exists already is left to the caller.
_INSERT_FIRST = (
    "INSERT INTO order_state (tenant_id, order_id, version, state, state_hash, data) "
    "VALUES (%s, %s, 1, %s, %s, %s) ON CONFLICT (tenant_id, order_id) DO NOTHING"
)


def state_hash(state: str, data: dict[str, Any]) -> str:
    blob = json.dumps({"state": state, "data": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class OrderStateRows:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, write: OrderStateWrite) -> OrderStateWritten:
        """Move the row from ``expected_version`` to the next one (optimistic)."""
        digest = state_hash(write.state, write.data)
        new_version = write.expected_version + 1
        async with self._db.tenant(write.tenant_id) as s:
            if write.expected_version == 0:
                changed = await s.execute(
                    _INSERT_FIRST,
                    (write.tenant_id, write.order_id, write.state, digest, Jsonb(write.data)),
                )
            else:
                changed = await s.execute(
                    "UPDATE order_state SET version = version + 1, state = %s, state_hash = %s, "
                    "data = %s, updated_at = now() "
                    "WHERE tenant_id = %s AND order_id = %s AND version = %s",
                    (
                        write.state,
                        digest,
                        Jsonb(write.data),
                        write.tenant_id,
                        write.order_id,
                        write.expected_version,
                    ),
                )
            if changed:
                return OrderStateWritten(version=new_version, applied=True)
            row = await s.fetch_one(
                "SELECT version, state_hash FROM order_state WHERE tenant_id = %s "
                "AND order_id = %s",
                (write.tenant_id, write.order_id),
            )
        if row is not None and row["version"] == new_version and row["state_hash"] == digest:
            return OrderStateWritten(version=new_version, applied=False)  # a retried write
        raise ApplicationError(
            f"order_state {write.order_id}: expected version {write.expected_version}, "
            f"found {None if row is None else row['version']}",
            type=ErrorCode.ORDER_STATE_CONFLICT,
            non_retryable=True,
        )

    async def ride(self, write: ProjectionWrite) -> OrderStateWritten:
        async with self._db.tenant(write.tenant_id) as s:
            return await self.ride_in(s, write)

    async def ride_in(self, s: TenantSession, write: ProjectionWrite) -> OrderStateWritten:
        """Merge the run's fields over the row at the next version (see the module
        docstring); ``applied=False``: this very write had landed already."""
        row = await s.fetch_one(
            "SELECT version, state, data FROM order_state WHERE tenant_id = %s "
            "AND order_id = %s FOR UPDATE",
            (write.tenant_id, write.order_id),
        )
        if row is None:
            digest = state_hash(write.state, write.data)
            inserted = await s.execute(
                _INSERT_FIRST,
                (write.tenant_id, write.order_id, write.state, digest, Jsonb(write.data)),
            )
            if inserted:
                return OrderStateWritten(version=1, applied=True)
            row = await s.fetch_one(  # another writer inserted it meanwhile: merge over it
                "SELECT version, state, data FROM order_state WHERE tenant_id = %s "
                "AND order_id = %s FOR UPDATE",
                (write.tenant_id, write.order_id),
            )
            assert row is not None
        held: dict[str, Any] = row["data"] or {}
        if (
            row["version"] == write.expected_version + 1
            and row["state"] == write.state
            and all(held.get(k) == v for k, v in write.data.items())
        ):
            return OrderStateWritten(version=row["version"], applied=False)  # a retry
        if row["version"] != write.expected_version:
            log.info(
                "order_state %s: at version %s, not %s; the run's fields merged over it",
                write.order_id,
                row["version"],
                write.expected_version,
            )
        merged = {**held, **write.data}
        version = row["version"] + 1
        await s.execute(
            "UPDATE order_state SET version = %s, state = %s, state_hash = %s, data = %s, "
            "updated_at = now() WHERE tenant_id = %s AND order_id = %s",
            (
                version,
                write.state,
                state_hash(write.state, merged),
                Jsonb(merged),
                write.tenant_id,
                write.order_id,
            ),
        )
        return OrderStateWritten(version=version, applied=True)
