"""Signed approval decisions, as an operator's client sends them (DESIGN §4).

:func:`sign_decision` builds the ``Decision`` a workflow accepts: the statement of
``kernel.decision_proof``, signed now with the approver's own private key
(``autobiz.approver_keys.LocalKey``), with a fresh nonce. ``starters.flows.decide`` sends it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from autobiz.approver_keys import LocalKey
from kernel.decision_proof import DecisionProof, b64encode, statement_for
from workflows.common.models import Decision


def sign_decision(
    key: LocalKey,
    *,
    tenant_id: str,
    workflow_id: str,
    request_id: str,
    approver: str,
    approve: bool,
    reason: str | None = None,
    choice: str | None = None,
    edited_text: str | None = None,
    issued_at: datetime | None = None,
    nonce: str | None = None,
) -> Decision:
    """The ``Decision`` (with its proof) for one request, signed by ``key``."""
    unsigned = DecisionProof(
        key_id=key.key_id,
        issued_at=issued_at or datetime.now(UTC),
        nonce=nonce or secrets.token_urlsafe(18),
        signature="-",
    )
    statement = statement_for(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        request_id=request_id,
        approve=approve,
        reason=reason,
        approver=approver,
        proof=unsigned,
        choice=choice,
        edited_text=edited_text,
    )
    signature = b64encode(key.private_key.sign(statement.canonical()))
    return Decision(
        tenant_id=tenant_id,
        approver=approver,
        approve=approve,
        request_id=request_id,
        reason=reason,
        proof=unsigned.model_copy(update={"signature": signature}),
        choice=choice,
        edited_text=edited_text,
    )
