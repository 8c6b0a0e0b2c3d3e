"""WF03 Refund: every approval path, and the validator's refusals (never in history)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from starters.flows import decide
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.support import FAST, Harness
from workflows.common.models import ApprovalTiming
from workflows.payments.models import RefundResult

pytestmark = pytest.mark.integration


async def _refund(
    h: Harness, amount: int, timing: ApprovalTiming = FAST, currency: str = "USD"
) -> tuple[WorkflowHandle[Any, RefundResult], str]:
    order_id, pi = await h.captured_order()
    return await h.request_refund(order_id, pi, amount, currency=currency, timing=timing), pi


async def _accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_below_threshold_refunds_without_approval(harness: Harness) -> None:
    h = harness
    handle, pi = await _refund(h, 2000)
    result = await handle.result()
    assert result.state == "refunded" and result.approval is None
    assert await h.refunded(pi) == 2000
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert tools == ["stripe.create_refund", "shopify.refund_create", "sendgrid.send_email"]
    assert await h.hitl_rows(handle.id) == []


async def test_above_threshold_approved(harness: Harness, approvers: Approvers) -> None:
    h = harness
    handle, pi = await _refund(h, 6000)
    request_id = await h.pending_request(handle.id)
    assert await h.refunded(pi) == 0  # nothing moves before the decision
    rows = await h.pending_rows(handle.id)
    assert [(r["status"], r["required_role"]) for r in rows] == [("pending", "finance")]
    decision = await approvers.decision(h.client, handle.id, "ana", True, reason="ok")
    result = await decide(h.client, handle.id, decision, update_id="approve-1")
    assert result.status == "approved" and result.request_id == request_id
    # The same update id again: Temporal returns the first outcome.
    again = await decide(h.client, handle.id, decision, update_id="approve-1")
    assert again == result
    done = await handle.result()
    assert done.state == "refunded" and done.approval is not None
    assert await h.refunded(pi) == 6000
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts] == [
        "stripe.create_refund",
        "shopify.refund_create",
        "sendgrid.send_email",
    ]
    assert receipts[0].amount_minor == 6000 and receipts[0].currency == "USD"
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"], r["reason"]) for r in rows] == [
        ("approved", "ana", "ok")
    ]
    assert await _accepted_updates(handle) == 1
    # Late: the request is decided and the flow is over.
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await decide(
            h.client,
            handle.id,
            await approvers.decision(h.client, handle.id, "ana", False, request_id=request_id),
        )
    await maybe_record(h.client, handle.id, "refund_approved_above_threshold")


async def test_above_threshold_denied(harness: Harness, approvers: Approvers) -> None:
    h = harness
    handle, pi = await _refund(h, 7500)
    await h.pending_request(handle.id)
    result = await decide(
        h.client,
        handle.id,
        await approvers.decision(h.client, handle.id, "ana", False, reason="abuse"),
    )
    assert result.status == "denied"
    done = await handle.result()
    assert done.state == "denied" and done.reason == "abuse"
    assert await h.refunded(pi) == 0
    assert [r.tool for r in await h.receipts(handle.id)] == []
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("denied", "ana")]


async def test_expiry_fails_closed_with_reminder_and_escalation(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    timing = ApprovalTiming(
        timeout=timedelta(seconds=3),
        remind_before=timedelta(seconds=1),
        escalate_after=timedelta(seconds=1),
    )
    handle, pi = await _refund(h, 9000, timing)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "APPROVAL_EXPIRED"
    assert await h.refunded(pi) == 0  # fail closed: no money moved
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "stripe.create_refund" not in tools and "shopify.refund_create" not in tools
    rows = await h.hitl_rows(handle.id)
    assert len(rows) == 1 and rows[0]["status"] == "expired"
    assert rows[0]["escalation_level"] == 1
    kinds = [n["kind"] for n in rows[0]["details"]["notes"]]
    assert kinds == ["escalation", "reminder"]
    templates = [m["request"]["template_id"] for m in await h.sandbox.control.outbox()]
    assert "d-autobiz-approval-escalated" in templates
    assert "d-autobiz-approval-reminder" in templates
    assert "d-autobiz-approval-expired" in templates
    status = await h.status_when(handle.id, lambda s: True)
    assert status.state == "expired"
    # Late: a decision after expiry is refused.
    late = await approvers.decision(
        h.client, handle.id, "ana", True, request_id=rows[0]["request_id"]
    )
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await decide(h.client, handle.id, late)


@pytest.mark.parametrize(
    ("decision", "why"),
    [
        (dict(tenant_id="other-tenant", approver="ana", approve=True), "tenant"),
        (dict(approver="mallory", approve=True), "not an approver"),
        (dict(approver="omar", approve=True), "roles"),
        (dict(approver="ana", approve=True, request_id="nope"), "not the pending"),
    ],
)
async def test_validator_rejects_before_history(
    harness: Harness, approvers: Approvers, decision: dict[str, Any], why: str
) -> None:
    h = harness
    handle, pi = await _refund(h, 5000)
    await h.pending_request(handle.id)
    await approvers.register("mallory")  # a key, but mallory is not on the roster
    signed = await approvers.decision(h.client, handle.id, decision["approver"], True)
    fields = {k: v for k, v in decision.items() if k not in ("approver", "approve")}
    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await decide(h.client, handle.id, signed.model_copy(update=fields))
    assert why in str(rejected.value.cause)
    assert await _accepted_updates(handle) == 0  # nothing was written
    assert await h.refunded(pi) == 0
    await decide(h.client, handle.id, await approvers.decision(h.client, handle.id, "ana", True))
    assert (await handle.result()).state == "refunded"


async def test_approve_and_deny_race_gives_one_outcome(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    handle, pi = await _refund(h, 8000)
    await h.pending_request(handle.id)
    yes = await approvers.decision(h.client, handle.id, "ana", True)
    no = await approvers.decision(h.client, handle.id, "ana", False)
    outcomes = await asyncio.gather(
        decide(h.client, handle.id, yes),
        decide(h.client, handle.id, no),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], WorkflowUpdateFailedError)
    done = await handle.result()
    expected = {"approved": "refunded", "denied": "denied"}[won[0].status]
    assert done.state == expected
    assert await h.refunded(pi) == (8000 if expected == "refunded" else 0)
    rows = await h.hitl_rows(handle.id)
    assert [r["status"] for r in rows] == [won[0].status]


async def test_signal_form_and_invalid_request(harness: Harness, approvers: Approvers) -> None:
    h = harness
    handle, _ = await _refund(h, 6000)
    await h.pending_request(handle.id)
    # Fire-and-forget: an invalid signal is dropped, a valid one decides.
    wrong_role = await approvers.decision(h.client, handle.id, "omar", True)
    await handle.signal("decide_signal", wrong_role)
    await handle.signal("decide_signal", await approvers.decision(h.client, handle.id, "ana", True))
    assert (await handle.result()).state == "refunded"
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("approved", "ana")]

    # Above what was captured / another currency: rejected, nothing asked, nothing moved.
    over, pi2 = await _refund(h, 20000)
    assert (await over.result()).state == "rejected"
    other, _ = await _refund(h, 1000, currency="EUR")
    assert (await other.result()).state == "rejected"
    assert await h.refunded(pi2) == 0
