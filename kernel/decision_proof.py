"""Approval proofs: the statement an approver signs, and its check (DESIGN §4 HITL).

A decision is accepted only with an Ed25519 signature, made with a key registered for
that approver in the tenant's ``approver_keys`` table, over a canonical statement
(RFC 8785 JSON) that names the tenant, the workflow, the request, the verdict, the
reason, the approver, the key, when it was issued and a nonce. The workflow rebuilds the
statement from *its own* tenant and workflow id and the pending request, so a proof made
for anything else does not verify.

Pure and deterministic (no clock, no randomness, no I/O): workflows import it (through
``imports_passed_through``) and check a proof against the registry snapshot they hold,
at ``workflow.now()``. Signing (which needs a private key and randomness) lives in
``autobiz.approver_keys``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, Field

from kernel.frozen import Frozen

STATEMENT_TYPE: Literal["autobiz.decision.v1"] = "autobiz.decision.v1"
# How old a proof may be, and how far ahead of the workflow's clock (the signer's skew).
DEFAULT_MAX_AGE = timedelta(minutes=10)
DEFAULT_MAX_SKEW = timedelta(minutes=1)

KEY_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class DecisionProof(Frozen):
    """What a ``Decision`` carries besides its fields: the signature and its inputs."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    issued_at: AwareDatetime
    nonce: str = Field(pattern=NONCE_PATTERN)
    signature: str = Field(min_length=1, max_length=200)  # base64url, 64 bytes


class DecisionStatement(Frozen):
    """The signed content. ``verdict`` is spelled out so a flipped bool cannot verify."""

    type: Literal["autobiz.decision.v1"] = STATEMENT_TYPE
    tenant_id: str
    workflow_id: str
    request_id: str
    verdict: Literal["approve", "deny"]
    reason: str | None
    approver: str
    key_id: str
    issued_at: AwareDatetime
    nonce: str
    # The pick among the request's options, and the SHA-256 (hex) of the edited draft.
    # Left out of the canonical bytes when None, so statements made before they existed
    # (and decisions without them) sign the same bytes as before.
    choice: str | None = None
    edit_sha256: str | None = None

    def canonical(self) -> bytes:
        """RFC 8785 bytes; ``issued_at`` as UTC RFC 3339 with microseconds."""
        data = self.model_dump()
        data["issued_at"] = utc_text(self.issued_at)
        for optional in ("choice", "edit_sha256"):
            if data[optional] is None:
                del data[optional]
        return bytes(rfc8785.dumps(data))


class ApproverKey(Frozen):
    """One row of the tenant's registry, as the workflow's snapshot holds it."""

    approver_id: str
    key_id: str
    public_key: str  # base64url of the raw 32-byte Ed25519 key
    not_before: AwareDatetime
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None


class ApproverKeyRegistry(Frozen):
    """A tenant's registry as read by an activity at ``as_of`` (the workflow cannot read)."""

    tenant_id: str
    as_of: AwareDatetime
    keys: tuple[ApproverKey, ...] = ()

    def get(self, key_id: str) -> ApproverKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


class ProofRejected(Exception):
    """Why a proof is not accepted (the message is shown to the sender)."""


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def statement_for(
    *,
    tenant_id: str,
    workflow_id: str,
    request_id: str,
    approve: bool,
    reason: str | None,
    approver: str,
    proof: DecisionProof,
    choice: str | None = None,
    edited_text: str | None = None,
) -> DecisionStatement:
    return DecisionStatement(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        request_id=request_id,
        verdict="approve" if approve else "deny",
        reason=reason,
        approver=approver,
        key_id=proof.key_id,
        issued_at=proof.issued_at,
        nonce=proof.nonce,
        choice=choice,
        edit_sha256=None if edited_text is None else text_sha256(edited_text),
    )


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def verify_signature(public_key: str, statement: DecisionStatement, signature: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(b64decode(public_key))
        key.verify(b64decode(signature), statement.canonical())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def check_proof(
    statement: DecisionStatement,
    signature: str,
    registry: ApproverKeyRegistry | None,
    *,
    now: datetime,
    requested_at: datetime,
    seen_nonces: Collection[str],
    max_age: timedelta = DEFAULT_MAX_AGE,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> None:
    """Raise :class:`ProofRejected` unless the statement is signed by a key that is
    registered for its approver in this tenant, valid now, and the proof is fresh, was
    made for this request (not before it was opened) and not used before in this run."""
    key = _usable_key(statement, registry, now)
    _check_fresh(statement.issued_at, now, requested_at, max_age, max_skew)
    if statement.nonce in seen_nonces:
        raise ProofRejected("the proof was already used (replayed nonce)")
    if not verify_signature(key.public_key, statement, signature):
        raise ProofRejected(
            f"the signature does not verify with key {statement.key_id} for this tenant, "
            "workflow, request and verdict"
        )


def _usable_key(
    statement: DecisionStatement, registry: ApproverKeyRegistry | None, now: datetime
) -> ApproverKey:
    """The statement's key: registered in this tenant for its approver, valid now."""
    kid = statement.key_id
    if registry is None or registry.tenant_id != statement.tenant_id:
        raise ProofRejected(
            "this flow holds no approver key registry for the request yet; "
            "run `autobiz approvals keys refresh` and decide again"
        )
    key = registry.get(kid)
    if key is None:
        raise ProofRejected(f"key {kid} is not registered for tenant {statement.tenant_id}")
    if key.approver_id != statement.approver:
        raise ProofRejected(f"key {kid} is not {statement.approver}'s key")
    if key.revoked_at is not None:
        raise ProofRejected(f"key {kid} was revoked")
    if now < key.not_before:
        raise ProofRejected(f"key {kid} is not valid before {utc_text(key.not_before)}")
    if key.expires_at is not None and now >= key.expires_at:
        raise ProofRejected(f"key {kid} expired at {utc_text(key.expires_at)}")
    return key


def _check_fresh(
    issued: datetime,
    now: datetime,
    requested_at: datetime,
    max_age: timedelta,
    max_skew: timedelta,
) -> None:
    """Issued (within the clock skew) after the request was opened and not in the
    future, and younger than ``max_age``."""
    if issued > now + max_skew:
        raise ProofRejected("the proof is issued in the future (check the signer's clock)")
    if now - issued > max_age:
        age = int((now - issued).total_seconds())
        raise ProofRejected(
            f"the proof expired: issued {age}s ago, proofs are valid for "
            f"{int(max_age.total_seconds())}s; sign again"
        )
    if issued < requested_at - max_skew:
        raise ProofRejected("the proof was issued before the request was opened")
