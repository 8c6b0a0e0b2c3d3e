"""Decisions carry proof (issue 10): against the real dev server, a decision without a
valid proof — unsigned, forged, replayed, expired, another tenant's key, the wrong role,
a revoked key — is rejected by the validator (nothing in history, no money moved), a
signal carrying one is dropped, and key rotation and revocation reach a request that is
already waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Replayer

from autobiz.approver_keys import LocalKey, generate_key
from starters.flows import decide
from tests.conftest import new_tenant
from tests.replay.support import replay_converter
from tests.support.approver_keys import Approvers, pending_request
from tests.workflows.support import Harness, eventually
from workers.worker import WORKFLOWS
from workflows.common.models import HITL_OPEN, Decision
from workflows.payments.models import RefundResult

pytestmark = pytest.mark.integration


async def _refund(h: Harness, amount: int = 6000) -> tuple[WorkflowHandle[Any, RefundResult], str]:
    """A refund above the threshold, waiting for finance; (handle, PaymentIntent)."""
    order_id, pi = await h.captured_order("100.00")
    handle = await h.request_refund(order_id, pi, amount)
    await pending_request(h.client, handle.id)
    return handle, pi


async def _accepted(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def _rejected(
    h: Harness, handle: WorkflowHandle[Any, Any], decision: Decision, why: str
) -> None:
    """Refused by the validator with ``why``; nothing in history."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await decide(h.client, handle.id, decision)
    assert why in str(refused.value.cause), refused.value.cause
    assert await _accepted(handle) == 0


async def _registry_reads(handle: WorkflowHandle[Any, Any]) -> int:
    """How many times the run has read the approver key registry (the HITL open)."""
    history = await handle.fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == HITL_OPEN
    }
    return sum(
        1
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    )


async def _keys_changed(handle: WorkflowHandle[Any, Any]) -> None:
    """Send ``approver_keys_changed`` and wait until the run has re-read the registry."""
    before = await _registry_reads(handle)
    await handle.signal("approver_keys_changed")

    async def reread() -> bool | None:
        return True if await _registry_reads(handle) > before else None

    await eventually(reread, what=f"{handle.id} re-reading the approver keys")


async def _replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The run's history (proof checks, key refreshes, patched signals) replays."""
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=replay_converter())
    history = await handle.fetch_history()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_unsigned_decision_is_rejected_before_history(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    handle, pi = await _refund(h)
    rid = await pending_request(h.client, handle.id)
    unsigned = Decision(tenant_id=h.tenant, approver="ana", approve=True, request_id=rid)
    await _rejected(h, handle, unsigned, "carries no proof")
    # A signed decision with its signature stripped off, or its verdict flipped.
    signed = await approvers.decision(h.client, handle.id, "ana", approve=False)
    await _rejected(h, handle, signed.model_copy(update={"approve": True}), "does not verify")
    await _rejected(h, handle, signed.model_copy(update={"reason": "ok"}), "does not verify")
    assert await h.refunded(pi) == 0
    signed = await approvers.decision(h.client, handle.id, "ana", approve=True)
    approved = await decide(h.client, handle.id, signed)
    assert approved.status == "approved" and approved.decided_by == "ana"
    assert (await handle.result()).state == "refunded"
    assert await h.refunded(pi) == 6000


async def test_forged_signature_is_rejected(harness: Harness, approvers: Approvers) -> None:
    h = harness
    handle, pi = await _refund(h)
    ana = approvers.keys["ana"]
    # Another key claiming ana's key id; omar's real key claiming to be ana.
    forger = LocalKey(ana.key_id, generate_key().private_key)
    forged = await approvers.decision(h.client, handle.id, "ana", True, key=forger)
    await _rejected(h, handle, forged, "does not verify")
    omar_as_ana = await approvers.decision(
        h.client, handle.id, "ana", True, key=approvers.keys["omar"]
    )
    await _rejected(h, handle, omar_as_ana, "is not ana's key")
    unknown = await approvers.decision(h.client, handle.id, "ana", True, key=generate_key())
    await _rejected(h, handle, unknown, "is not registered")
    assert await h.refunded(pi) == 0


async def test_replayed_proof_is_rejected(harness: Harness, approvers: Approvers) -> None:
    h = harness
    first, pi_first = await _refund(h)
    second, pi_second = await _refund(h)
    proof_for_first = await approvers.decision(h.client, first.id, "ana", approve=True)
    # Sent to another request (another workflow): the statement names the first one.
    await _rejected(
        h, second, proof_for_first.model_copy(update={"request_id": None}), "request_id"
    )
    await _rejected(h, second, proof_for_first, "is not the pending request")
    second_rid = await pending_request(h.client, second.id)
    retargeted = proof_for_first.model_copy(update={"request_id": second_rid})
    await _rejected(h, second, retargeted, "does not verify")
    # Its own request: accepted once. The same proof again under a new update id: refused.
    await decide(h.client, first.id, proof_for_first, update_id="first")
    assert (await first.result()).state == "refunded"
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):  # decided; maybe closed
        await decide(h.client, first.id, proof_for_first, update_id="again")
    assert await _accepted(first) == 1
    assert await h.refunded(pi_first) == 6000 and await h.refunded(pi_second) == 0


async def test_expired_or_future_proof_is_rejected(harness: Harness, approvers: Approvers) -> None:
    h = harness
    handle, pi = await _refund(h)
    now = datetime.now(UTC)
    old = await approvers.decision(
        h.client, handle.id, "ana", True, issued_at=now - timedelta(minutes=11)
    )
    await _rejected(h, handle, old, "the proof expired")
    ahead = await approvers.decision(
        h.client, handle.id, "ana", True, issued_at=now + timedelta(minutes=5)
    )
    await _rejected(h, handle, ahead, "in the future")
    assert await h.refunded(pi) == 0


async def test_other_tenants_key_and_wrong_role_are_rejected(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    handle, pi = await _refund(h)
    other = await new_tenant(h.db, "o")
    theirs = await approvers.register("ana", tenant=other)
    cross = await approvers.decision(h.client, handle.id, "ana", True, key=theirs)
    await _rejected(h, handle, cross, f"is not registered for tenant {h.tenant}")
    as_other = await approvers.decision(
        h.client, handle.id, "ana", True, key=theirs, tenant_id=other
    )
    await _rejected(h, handle, as_other, f"decision for tenant {other}")
    # omar holds a valid key but not the finance role this refund needs.
    omar = await approvers.decision(h.client, handle.id, "omar", True)
    await _rejected(h, handle, omar, "none of the roles finance")
    assert await h.refunded(pi) == 0


async def test_rotation_keeps_the_old_key_until_revoked(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    old_key = approvers.keys["ana"]
    waiting_old, pi_old = await _refund(h)
    waiting_new, pi_new = await _refund(h)
    waiting_revoked, pi_revoked = await _refund(h)
    new_key = await approvers.register("ana")  # rotation: the old key stays valid

    # A request waiting since before the rotation learns the new key when told.
    early = await approvers.decision(h.client, waiting_new.id, "ana", True, key=new_key)
    await _rejected(h, waiting_new, early, "is not registered")
    await _keys_changed(waiting_new)
    signed = await approvers.decision(h.client, waiting_new.id, "ana", True, key=new_key)
    await decide(h.client, waiting_new.id, signed)
    # The old key still works.
    signed = await approvers.decision(h.client, waiting_old.id, "ana", True, key=old_key)
    await decide(h.client, waiting_old.id, signed)
    assert (await waiting_old.result()).state == "refunded"
    assert (await waiting_new.result()).state == "refunded"

    # Revoked while a request waits: refused there once it is told, and everywhere after.
    await approvers.revoke(old_key)
    await _keys_changed(waiting_revoked)
    revoked = await approvers.decision(h.client, waiting_revoked.id, "ana", True, key=old_key)
    await _rejected(h, waiting_revoked, revoked, f"key {old_key.key_id} was revoked")
    later, pi_later = await _refund(h)
    await _rejected(
        h,
        later,
        await approvers.decision(h.client, later.id, "ana", True, key=old_key),
        "was revoked",
    )
    signed = await approvers.decision(h.client, later.id, "ana", True, key=new_key)
    await decide(h.client, later.id, signed)
    assert (await later.result()).state == "refunded"
    assert await h.refunded(pi_revoked) == 0
    assert [await h.refunded(pi) for pi in (pi_old, pi_new, pi_later)] == [6000] * 3
    await waiting_revoked.terminate("test over")
    await _replays(waiting_new)


async def test_signals_without_a_valid_proof_are_dropped(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    handle, pi = await _refund(h)
    rid = await pending_request(h.client, handle.id)
    forger = LocalKey(approvers.keys["ana"].key_id, generate_key().private_key)
    junk = [
        Decision(tenant_id=h.tenant, approver="ana", approve=True, request_id=rid),
        await approvers.decision(h.client, handle.id, "ana", True, key=forger),
        await approvers.decision(h.client, handle.id, "omar", True),
    ]
    for decision in junk:
        await handle.signal("decide_signal", decision)
    await handle.signal("approver_keys_changed")  # harmless from anyone

    # The run processed every junk signal and is still waiting; nothing moved.
    await eventually(
        lambda: _signals_seen(handle, len(junk) + 1), what="the junk signals processed"
    )
    status = await h.status_when(handle.id, lambda s: True)
    assert status.approval is not None and status.approval.status == "pending"
    assert await h.refunded(pi) == 0
    await handle.signal("decide_signal", await approvers.decision(h.client, handle.id, "ana", True))
    assert (await handle.result()).state == "refunded"
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("approved", "ana")]
    await _replays(handle)


async def _signals_seen(handle: WorkflowHandle[Any, Any], count: int) -> bool | None:
    """The signals are in history and a workflow task completed after the last one."""
    events = (await handle.fetch_history()).events
    signalled = [
        e.event_id for e in events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    if len(signalled) < count:
        return None
    done = [e.event_id for e in events if e.HasField("workflow_task_completed_event_attributes")]
    return True if done and done[-1] > signalled[-1] else None
