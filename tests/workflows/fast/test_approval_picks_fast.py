"""Approvals that ask for a pick among options, or carry a draft to edit (issue #12): the
pick and the edit are inside the signed statement; a pick that is not offered, a missing
pick, an edit of a request without a draft, or a signature over other content is
rejected by the validator before anything is written; the flow gets the pick and the
edited text."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import Worker

from starters.decisions import sign_decision
from starters.flows import decide
from tests.workflows.fast.conftest import Fast
from tests.workflows.fast.pick_workflow import PickInput, PickTest
from workflows.common.models import ApprovalView, Decision

pytestmark = pytest.mark.integration

DRAFT = "Hello Jane, your order #1001 shipped with tracking 1Z999."


async def _pick(fast: Fast, **ask: Any) -> tuple[WorkflowHandle[Any, ApprovalView], Worker]:
    queue = f"pick-{uuid.uuid4()}"
    worker = Worker(
        fast.client, task_queue=queue, workflows=[PickTest], activities=fast.fakes.activities()
    )
    handle = await fast.client.start_workflow(
        PickTest.run,
        PickInput(tenant_id=fast.tenant, **ask),
        id=f"pick:{fast.tenant}:{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )
    return handle, worker


async def _signed(fast: Fast, handle: WorkflowHandle[Any, Any], **decision: Any) -> Decision:
    """Ana's decision on the request the flow opened (approved unless ``decision`` says)."""
    request = await fast.fakes.opened_request()
    return sign_decision(
        fast.keys["ana"],
        tenant_id=fast.tenant,
        workflow_id=handle.id,
        request_id=request.request_id,
        approver="ana",
        **{"approve": True, **decision},
    )


async def _send(fast: Fast, handle: WorkflowHandle[Any, Any], **decision: Any) -> Any:
    return await decide(fast.client, handle.id, await _signed(fast, handle, **decision))


async def _refused(fast: Fast, handle: WorkflowHandle[Any, Any], why: str, **decision: Any) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await _send(fast, handle, **decision)
    assert why in str(refused.value.cause), refused.value.cause
    history = await handle.fetch_history()
    assert not any(
        e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events
    )


async def test_the_flow_gets_the_pick_and_the_edit(fast: Fast) -> None:
    handle, worker = await _pick(fast, options=("fix", "cancel_and_refund"), draft=DRAFT)
    async with worker:
        request = await fast.fakes.opened_request()
        assert request.details["options"] == ["fix", "cancel_and_refund"]
        assert request.details["draft"] == DRAFT  # `autobiz approvals show` reads it here
        shown = (await handle.query(PickTest.status)).approval
        assert shown is not None and shown.options == ("fix", "cancel_and_refund")
        await _refused(fast, handle, "needs a choice: fix, cancel_and_refund")
        await _refused(fast, handle, "'refund_all' is not an option", choice="refund_all")
        edited = "Hello Jane, it is on its way: 1Z999 (UPS)."
        await _send(fast, handle, choice="cancel_and_refund", edited_text=edited)
        view = await handle.result()
    assert (view.status, view.choice, view.edited_text) == ("approved", "cancel_and_refund", edited)
    assert view.final_text == edited


async def test_a_plain_request_takes_no_pick_and_no_edit(fast: Fast) -> None:
    handle, worker = await _pick(fast)
    async with worker:
        await _refused(fast, handle, "not an option of this request: none", choice="fix")
        await _refused(fast, handle, "no draft to edit", edited_text="my own words")
        await _send(fast, handle)
        view = await handle.result()
    assert (view.status, view.choice, view.edited_text, view.final_text) == (
        "approved",
        None,
        None,
        None,
    )


async def test_the_signature_covers_the_pick_and_the_edit(fast: Fast) -> None:
    """A decision whose pick or edit was changed after signing does not verify."""
    handle, worker = await _pick(fast, options=("fix", "contact_customer"), draft=DRAFT)
    async with worker:
        signed = await _signed(fast, handle, choice="contact_customer", edited_text="as signed")
        for tampered in (
            signed.model_copy(update={"choice": "fix"}),
            signed.model_copy(update={"edited_text": "changed in transit"}),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await decide(fast.client, handle.id, tampered)
            assert "signature does not verify" in str(refused.value.cause)
        await decide(fast.client, handle.id, signed)
        view = await handle.result()
    assert (view.choice, view.final_text) == ("contact_customer", "as signed")


async def test_a_denial_keeps_neither(fast: Fast) -> None:
    handle, worker = await _pick(fast, options=("fix",), draft=DRAFT)
    async with worker:
        await _send(fast, handle, approve=False, reason="no")
        view = await handle.result()
    assert (view.status, view.choice, view.final_text) == ("denied", None, DRAFT)
