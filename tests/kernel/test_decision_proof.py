"""kernel.decision_proof: the canonical statement, the signature, and every reason a
proof is refused (the workflow-side check, without a workflow)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autobiz.approver_keys import LocalKey, generate_key
from kernel.decision_proof import (
    ApproverKey,
    ApproverKeyRegistry,
    DecisionStatement,
    ProofRejected,
    check_proof,
    statement_for,
)
from starters.decisions import sign_decision
from workflows.common.models import Decision

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OPENED = NOW - timedelta(minutes=2)
TENANT, WORKFLOW, REQUEST = "shop-a", "refund:shop-a:rr-1", "refund:shop-a:rr-1#refund#1"


def _registry(*keys: tuple[str, LocalKey], **changes: datetime | None) -> ApproverKeyRegistry:
    rows = tuple(
        ApproverKey(
            approver_id=who,
            key_id=k.key_id,
            public_key=k.public_key,
            not_before=NOW - timedelta(days=1),
            **changes,
        )
        for who, k in keys
    )
    return ApproverKeyRegistry(tenant_id=TENANT, as_of=NOW, keys=rows)


def _signed(key: LocalKey, approver: str = "ana", **kw: object) -> Decision:
    args: dict[str, object] = {"issued_at": NOW - timedelta(seconds=5), "approve": True}
    args.update(kw)
    return sign_decision(
        key,
        tenant_id=TENANT,
        workflow_id=WORKFLOW,
        request_id=REQUEST,
        approver=approver,
        **args,  # type: ignore[arg-type]
    )


def _check(
    d: Decision,
    registry: ApproverKeyRegistry | None,
    *,
    workflow_id: str = WORKFLOW,
    now: datetime = NOW,
    seen: frozenset[str] = frozenset(),
) -> None:
    assert d.proof is not None and d.request_id is not None
    statement = statement_for(
        tenant_id=TENANT,
        workflow_id=workflow_id,
        request_id=d.request_id,
        approve=d.approve,
        reason=d.reason,
        approver=d.approver,
        proof=d.proof,
    )
    check_proof(
        statement, d.proof.signature, registry, now=now, requested_at=OPENED, seen_nonces=seen
    )


def test_statement_is_rfc8785_canonical() -> None:
    statement = DecisionStatement(
        tenant_id=TENANT,
        workflow_id=WORKFLOW,
        request_id=REQUEST,
        verdict="approve",
        reason="ok ✓",
        approver="ana",
        key_id="ak_0123456789",
        issued_at=NOW,
        nonce="n" * 20,
    )
    raw = statement.canonical()
    data = json.loads(raw)
    assert list(data) == sorted(data)  # keys sorted, no whitespace, UTF-8 as is
    assert b" " not in raw.replace(b"ok \xe2\x9c\x93", b"") and "✓".encode() in raw
    assert data["issued_at"] == "2025-03-01T12:00:00.000000Z"
    assert data["type"] == "autobiz.decision.v1"
    # The same instant in another zone is the same statement.
    other_zone = statement.model_copy(
        update={"issued_at": NOW.astimezone(datetime.now().astimezone().tzinfo)}
    )
    assert other_zone.canonical() == raw


def test_a_valid_proof_passes() -> None:
    ana = generate_key()
    _check(_signed(ana, reason="ok"), _registry(("ana", ana)))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.model_copy(update={"approve": False}), "does not verify"),
        (lambda d: d.model_copy(update={"reason": "changed"}), "does not verify"),
        (lambda d: d.model_copy(update={"request_id": REQUEST + "x"}), "does not verify"),
    ],
)
def test_a_changed_decision_does_not_verify(change: object, why: str) -> None:
    ana = generate_key()
    with pytest.raises(ProofRejected, match=why):
        _check(change(_signed(ana)), _registry(("ana", ana)))  # type: ignore[operator]


def test_another_workflow_does_not_verify() -> None:
    ana = generate_key()
    with pytest.raises(ProofRejected, match="does not verify"):
        _check(_signed(ana), _registry(("ana", ana)), workflow_id="refund:shop-a:rr-2")


def test_key_checks() -> None:
    ana, omar = generate_key(), generate_key()
    both = _registry(("ana", ana), ("omar", omar))
    with pytest.raises(ProofRejected, match="no approver key registry"):
        _check(_signed(ana), None)
    with pytest.raises(ProofRejected, match="is not registered"):
        _check(_signed(generate_key()), both)
    with pytest.raises(ProofRejected, match="is not ana's key"):
        _check(_signed(omar), both)
    forged = LocalKey(ana.key_id, omar.private_key)
    with pytest.raises(ProofRejected, match="does not verify"):
        _check(_signed(forged), both)
    with pytest.raises(ProofRejected, match="was revoked"):
        _check(_signed(ana), _registry(("ana", ana), revoked_at=NOW - timedelta(seconds=1)))
    with pytest.raises(ProofRejected, match="expired at"):
        _check(_signed(ana), _registry(("ana", ana), expires_at=NOW))
    later = ApproverKeyRegistry(
        tenant_id=TENANT,
        as_of=NOW,
        keys=(
            ApproverKey(
                approver_id="ana",
                key_id=ana.key_id,
                public_key=ana.public_key,
                not_before=NOW + timedelta(hours=1),
            ),
        ),
    )
    with pytest.raises(ProofRejected, match="not valid before"):
        _check(_signed(ana), later)
    other_tenant = _registry(("ana", ana)).model_copy(update={"tenant_id": "shop-b"})
    with pytest.raises(ProofRejected, match="no approver key registry"):
        _check(_signed(ana), other_tenant)


def test_freshness_and_replay() -> None:
    ana = generate_key()
    registry = _registry(("ana", ana))
    with pytest.raises(ProofRejected, match="expired: issued 660s ago"):
        _check(_signed(ana, issued_at=NOW - timedelta(minutes=11)), registry)
    with pytest.raises(ProofRejected, match="in the future"):
        _check(_signed(ana, issued_at=NOW + timedelta(minutes=2)), registry)
    with pytest.raises(ProofRejected, match="before the request was opened"):
        _check(_signed(ana, issued_at=OPENED - timedelta(minutes=5)), registry)
    used = _signed(ana)
    assert used.proof is not None
    _check(used, registry)
    with pytest.raises(ProofRejected, match="replayed nonce"):
        _check(used, registry, seen=frozenset({used.proof.nonce}))


def test_a_statement_without_pick_or_edit_signs_the_bytes_it_always_signed() -> None:
    """The pick and the edit's hash join the canonical bytes only when present, so a
    proof made before they existed (and a plain yes/no) still verifies."""
    import json

    from kernel.decision_proof import DecisionStatement, text_sha256

    base: dict[str, Any] = {
        "tenant_id": "t",
        "workflow_id": "refund:t:r1",
        "request_id": "refund:t:r1#refund#1",
        "verdict": "approve",
        "reason": None,
        "approver": "ana",
        "key_id": "key-0001",
        "issued_at": datetime(2026, 12, 2, tzinfo=UTC),
        "nonce": "n" * 16,
    }
    plain = json.loads(DecisionStatement(**base).canonical())
    assert "choice" not in plain and "edit_sha256" not in plain
    picked = json.loads(
        DecisionStatement(**base, choice="fix", edit_sha256=text_sha256("x")).canonical()
    )
    assert picked["choice"] == "fix" and picked["edit_sha256"] == text_sha256("x")
