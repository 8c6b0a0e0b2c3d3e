"""Receipts (P1-R07): one immutable row per side effect, linked to both idempotency keys.

Append-only in the database (a trigger refuses UPDATE/DELETE/TRUNCATE for everyone).
Writing is idempotent on ``(tenant_id, internal_key)``: an activity retry gets the
receipt already written. A failure to write raises ``ReceiptWriteError``, which is
retryable, so the activity fails and retries instead of losing the receipt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autobiz.db.database import Database, TenantSession
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode
from kernel.contracts import SideEffect
from kernel.redaction import redact_value

_COLUMNS = (
    "tenant_id, workflow_id, run_id, activity_id, tool, tool_version, side_effect_class, "
    "internal_key, external_key, request_hash, provider, provider_object_id, status, "
    "amount_minor, currency, details"
)


_INSERT = (
    f"INSERT INTO receipts ({_COLUMNS}) VALUES ({', '.join(['%s'] * 16)}) "
    "ON CONFLICT (tenant_id, internal_key) DO NOTHING"
)


class ReceiptWriteError(AutobizError):
    """Retryable: the side effect happened but its receipt is not stored yet."""

    code = ErrorCode.RECEIPT_WRITE_FAILED


class ReceiptDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    workflow_id: str
    run_id: str
    activity_id: str
    tool: str
    tool_version: str
    side_effect: SideEffect
    internal_key: str
    external_key: str
    request_hash: str
    provider: str
    provider_object_id: str | None = None
    status: str
    amount_minor: int | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ReceiptDraft:
        if self.side_effect is SideEffect.READ:
            raise ValueError("READ tools write no receipt")
        if self.side_effect is SideEffect.FINANCIAL and (
            self.amount_minor is None or self.currency is None
        ):
            raise ValueError("a FINANCIAL receipt needs amount_minor and currency")
        return self


class Receipt(ReceiptDraft):
    receipt_id: int
    created_at: datetime


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, draft: ReceiptDraft) -> bool:
        """Write the receipt; False when this key's receipt was already written (a retry)."""
        try:
            async with self._db.tenant(draft.tenant_id) as s:
                return await self.write_in(s, draft)
        except (psycopg.Error, AutobizError) as exc:
            raise _write_error(draft, exc) from exc

    async def write_in(self, session: TenantSession, draft: ReceiptDraft) -> bool:
        """The receipt as one statement of the caller's transaction (the side-effect
        runner writes it with the idempotency finish); False when already written."""
        try:
            inserted = await session.execute(_INSERT, _params(draft, redact_value(draft.details)))
        except psycopg.Error as exc:
            raise _write_error(draft, exc) from exc
        return inserted == 1

    async def record(self, draft: ReceiptDraft) -> Receipt:
        """Write the receipt (or return the one already written for this key)."""
        details = redact_value(draft.details)
        existing: dict[str, Any] | None = None
        try:
            async with self._db.tenant(draft.tenant_id) as s:
                # One statement when the receipt is new; the SELECT runs only on a retry
                # that finds the receipt already written.
                row = await s.fetch_one(
                    _INSERT + " RETURNING receipt_id, created_at", _params(draft, details)
                )
                if row is None:
                    existing = await s.fetch_one(
                        f"SELECT receipt_id, created_at, {_COLUMNS} FROM receipts "
                        "WHERE tenant_id = %s AND internal_key = %s",
                        (draft.tenant_id, draft.internal_key),
                    )
        except (psycopg.Error, AutobizError) as exc:
            raise _write_error(draft, exc) from exc
        if row is not None:
            # The row just inserted is exactly the draft (with its redacted details):
            # no need to read it back or validate it a second time.
            return Receipt.model_construct(**{**dict(draft), "details": details, **row})
        if existing is None:  # pragma: no cover - the conflict guarantees a row
            raise ReceiptWriteError("receipt vanished after insert")
        return _receipt(existing)

    async def get(self, tenant_id: str, internal_key: str) -> Receipt | None:
        async with self._db.tenant(tenant_id) as s:
            row = await s.fetch_one(
                f"SELECT receipt_id, created_at, {_COLUMNS} FROM receipts "
                "WHERE tenant_id = %s AND internal_key = %s",
                (tenant_id, internal_key),
            )
        return None if row is None else _receipt(row)

    async def for_workflow(self, tenant_id: str, workflow_id: str) -> list[Receipt]:
        async with self._db.tenant(tenant_id) as s:
            rows = await s.fetch_all(
                f"SELECT receipt_id, created_at, {_COLUMNS} FROM receipts "
                "WHERE tenant_id = %s AND workflow_id = %s ORDER BY receipt_id",
                (tenant_id, workflow_id),
            )
        return [_receipt(r) for r in rows]


def _params(draft: ReceiptDraft, details: dict[str, Any]) -> tuple[Any, ...]:
    return (
        draft.tenant_id,
        draft.workflow_id,
        draft.run_id,
        draft.activity_id,
        draft.tool,
        draft.tool_version,
        draft.side_effect.value,
        draft.internal_key,
        draft.external_key,
        draft.request_hash,
        draft.provider,
        draft.provider_object_id,
        draft.status,
        draft.amount_minor,
        draft.currency,
        Jsonb(details),
    )


def _write_error(draft: ReceiptDraft, exc: Exception) -> ReceiptWriteError:
    return ReceiptWriteError(
        f"could not store the receipt for {draft.tool}@{draft.tool_version}: {type(exc).__name__}"
    )


def _receipt(row: dict[str, Any]) -> Receipt:
    data = dict(row)
    data["side_effect"] = data.pop("side_effect_class")
    if data.get("currency") is not None:
        data["currency"] = str(data["currency"]).strip()
    return Receipt.model_validate(data)
