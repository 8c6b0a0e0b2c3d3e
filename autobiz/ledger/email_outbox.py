"""The email outbox (migration 0006): a message is claimed before SendGrid is called, so
it goes out at most once per identity (the call's internal key).

    claim = await outbox.claim(tenant, internal_key=..., external_key=..., ...)
    if claim.may_send: send, then ``settle(..., "sent" | "not_sent" | "unknown")``

The claim is its own committed transaction. An attempt that finds a claim with no
recorded answer (``sending``: the attempt before it was killed, or hung, between the
call and the record) cannot know whether SendGrid accepted the message; it marks it
``unknown``, writes an ops note to ``audit_log`` and does not send. SendGrid's v3 mail
send has no lookup by our reference (its Email Activity API is a paid add-on with
minutes of lag), so the reference (``custom_args.autobiz_ref`` = the external key) is
what ops search for in SendGrid's activity feed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from psycopg.types.json import Jsonb

from autobiz.db.database import Database, TenantSession

log = logging.getLogger(__name__)

OutboxStatus = Literal["sending", "sent", "not_sent", "unknown"]
UNKNOWN_NOTE = (
    "an earlier attempt claimed this message and recorded no answer from SendGrid; it may "
    "have been delivered, so it is not sent again (search SendGrid's activity for "
    "custom arg autobiz_ref={ref})"
)


@dataclass(frozen=True)
class Claim:
    status: OutboxStatus
    attempts: int
    message_id: str | None = None

    @property
    def may_send(self) -> bool:
        """Only a fresh claim (``sending`` taken by this attempt) sends."""
        return self.status == "sending"


class EmailOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        tenant_id: str,
        *,
        internal_key: str,
        external_key: str,
        workflow_id: str,
        template: str,
    ) -> Claim:
        """Claim the message for this attempt, or say what became of it."""
        async with self._db.tenant(tenant_id) as s:
            inserted = await s.execute(
                "INSERT INTO email_outbox (tenant_id, internal_key, external_key, workflow_id, "
                "template, status) VALUES (%s, %s, %s, %s, %s, 'sending') "
                "ON CONFLICT (tenant_id, internal_key) DO NOTHING",
                (tenant_id, internal_key, external_key, workflow_id, template),
            )
            if inserted:
                return Claim("sending", 1)
            row = await s.fetch_one(
                "SELECT status, attempts, message_id FROM email_outbox "
                "WHERE tenant_id = %s AND internal_key = %s FOR UPDATE",
                (tenant_id, internal_key),
            )
            assert row is not None
            status, attempts = row["status"], int(row["attempts"])
            if status == "not_sent":  # SendGrid said no: this attempt may try again
                await s.execute(
                    "UPDATE email_outbox SET status = 'sending', attempts = attempts + 1, "
                    "claimed_at = now(), settled_at = NULL WHERE tenant_id = %s "
                    "AND internal_key = %s",
                    (tenant_id, internal_key),
                )
                return Claim("sending", attempts + 1)
            if status == "sending":  # claimed before, never answered: maybe delivered
                await _mark_unknown(s, tenant_id, internal_key, external_key, workflow_id, template)
                return Claim("unknown", attempts)
            return Claim(status, attempts, row["message_id"])

    async def settle(
        self,
        tenant_id: str,
        internal_key: str,
        status: Literal["sent", "not_sent", "unknown"],
        *,
        message_id: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record SendGrid's answer for a claim this attempt holds. ``sent`` also settles a
        claim another attempt has meanwhile marked ``unknown`` (a late answer is news)."""
        allowed = ("sending", "unknown") if status == "sent" else ("sending",)
        async with self._db.tenant(tenant_id) as s:
            await s.execute(
                "UPDATE email_outbox SET status = %s, message_id = COALESCE(%s, message_id), "
                "note = COALESCE(%s, note), settled_at = now() "
                "WHERE tenant_id = %s AND internal_key = %s AND status = ANY(%s)",
                (status, message_id, note, tenant_id, internal_key, list(allowed)),
            )

    async def get(self, tenant_id: str, internal_key: str) -> Claim | None:
        async with self._db.tenant(tenant_id) as s:
            row = await s.fetch_one(
                "SELECT status, attempts, message_id FROM email_outbox "
                "WHERE tenant_id = %s AND internal_key = %s",
                (tenant_id, internal_key),
            )
        return (
            None if row is None else Claim(row["status"], int(row["attempts"]), row["message_id"])
        )


async def _mark_unknown(
    s: TenantSession,
    tenant_id: str,
    internal_key: str,
    external_key: str,
    workflow_id: str,
    template: str,
) -> None:
    """A claim nobody answered may have been delivered: ``unknown``, with a note for ops
    (on the row, in ``audit_log`` and the log) naming the reference to search for."""
    note = UNKNOWN_NOTE.format(ref=external_key)
    await s.execute(
        "UPDATE email_outbox SET status = 'unknown', note = %s, settled_at = now() "
        "WHERE tenant_id = %s AND internal_key = %s",
        (note, tenant_id, internal_key),
    )
    detail = {
        "internal_key": internal_key,
        "autobiz_ref": external_key,
        "template": template,
        "note": note,
    }
    await s.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
        "VALUES (%s, %s, 'email.outcome_unknown', 'not_resent', %s)",
        (tenant_id, f"workflow:{workflow_id}", Jsonb(detail)),
    )
    log.warning("email %s of %s: %s", internal_key, tenant_id, note)
