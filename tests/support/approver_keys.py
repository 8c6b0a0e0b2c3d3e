"""Approver keys for tests: every approver of the demo roster gets a registered key in
the test's tenant before its flows open a request, and decisions are signed with them
exactly as ``autobiz approvals approve`` signs (``autobiz.approver_keys``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from temporalio.client import Client

from autobiz.approver_keys import LocalKey, generate_key, register_key, revoke_key
from autobiz.db.database import Database
from starters.flows import flow_status
from tests.workflows.support import eventually
from workflows.common.models import Decision

ROSTER = ("ana", "omar")  # the approvers of config/demo-shop.yaml


@dataclass
class Approvers:
    db: Database
    tenant: str
    keys: dict[str, LocalKey] = field(default_factory=dict)

    async def register(
        self, approver: str, *, tenant: str | None = None, expires_in: timedelta | None = None
    ) -> LocalKey:
        """A new key for ``approver`` in ``tenant`` (default: this one); the newest key of
        an approver of this tenant is the one :meth:`decision` signs with."""
        key = generate_key()
        await register_key(
            self.db,
            tenant or self.tenant,
            approver,
            key.public_key,
            key_id=key.key_id,
            created_by="test",
            expires_in=expires_in,
        )
        if tenant is None or tenant == self.tenant:
            self.keys[approver] = key
        return key

    async def revoke(self, key: LocalKey) -> None:
        await revoke_key(self.db, self.tenant, key.key_id, reason="test")

    async def decision(
        self,
        client: Client,
        workflow_id: str,
        approver: str,
        approve: bool,
        *,
        reason: str | None = None,
        request_id: str | None = None,
        choice: str | None = None,
        edited_text: str | None = None,
        key: LocalKey | None = None,
        issued_at: datetime | None = None,
        tenant_id: str | None = None,
    ) -> Decision:
        """A signed decision on ``request_id`` (default: the request pending now)."""
        from starters.decisions import sign_decision

        rid = request_id or await pending_request(client, workflow_id)
        return sign_decision(
            key or self.keys[approver],
            tenant_id=tenant_id or self.tenant,
            workflow_id=workflow_id,
            request_id=rid,
            approver=approver,
            approve=approve,
            reason=reason,
            choice=choice,
            edited_text=edited_text,
            issued_at=issued_at,
        )


async def pending_request(client: Client, workflow_id: str) -> str:
    async def probe() -> str | None:
        try:
            status = await flow_status(client, workflow_id)
        except Exception:  # not started yet / no query handler yet
            return None
        approval = status.approval
        return approval.request_id if approval and approval.status == "pending" else None

    return await eventually(probe, what=f"a pending approval on {workflow_id}")


@pytest.fixture
async def approvers(database: Database, tenant: str) -> Approvers:
    """The test tenant's roster with one registered key each."""
    keys = Approvers(database, tenant)
    for approver in ROSTER:
        await keys.register(approver)
    return keys
