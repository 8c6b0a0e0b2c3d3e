"""OrderCancellation cancelled from the Temporal side (`temporal workflow cancel`), with
stand-in activities (``fakes``): a pending approval is withdrawn, nothing further is
done, and once the flow had begun to change the order ops are told what was done."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from kernel.tools.shopify import ShippingAddress
from starters.flows import flow_status, request_cancellation, start_order
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, shop_order
from tests.workflows.support import eventually
from workflows.common.approvals import FLOW_CANCELLED

GET, RISK, EMAIL = "shopify.get_order@1", "risk.assess@1", "sendgrid.send_email@1"
PF_GET, READ = "printful.get_order@1", "stripe.get_payment_intent@1"


async def _cancel(fast: Fast, order_id: str) -> WorkflowHandle[Any, Any]:
    return await request_cancellation(
        fast.client, fast.config, order_id=order_id, task_queue=fast.task_queue, timing=TIMING
    )


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool | None:
    """The run is in its approval wait (the request's row is open)."""
    attrs = (await handle.describe()).typed_search_attributes
    return True if [p.value for p in attrs if p.key.name == "ApprovalPending"] == [True] else None


async def _cancelled(handle: WorkflowHandle[Any, Any]) -> None:
    """Once it waits for its approval, cancel the run as an operator would, and see it
    end CANCELED."""
    await eventually(lambda: _waiting(handle), what="the approval wait")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_cancelled_while_the_void_waits_for_approval_changes_nothing(fast: Fast) -> None:
    order_id, pi = "4101", "pi_4101"
    fast.fakes.orders[order_id] = shop_order(
        order_id, total_minor=15000, financial_status="AUTHORIZED"
    )
    big = payment_intent(pi, "requires_capture", order_key=f"{fast.tenant}:{order_id}")
    fast.fakes.intents[pi] = [big.model_copy(update={"amount_capturable_minor": 15000})]
    handle = await _cancel(fast, order_id)
    request = await fast.fakes.opened_request()
    assert request.action == "void_payment" and request.amount_minor == 15000

    await _cancelled(handle)
    [closed] = fast.fakes.closed
    assert closed.request_id == request.request_id
    assert (closed.status, closed.decided_by) == ("denied", FLOW_CANCELLED)
    assert fast.fakes.names() == [GET, PF_GET, READ]  # nothing voided, cancelled or sent
    assert fast.fakes.states[order_id] == []  # OrderFulfill's row was never taken over
    status = await flow_status(fast.client, handle.id)
    assert status.state == "abandoned" and status.approval is not None
    assert status.detail["cancelled_in"] == "awaiting_approval"
    assert status.detail["compensated"] == []


async def test_cancelled_after_the_takeover_alerts_ops(fast: Fast) -> None:
    order_id, pi = "4102", "pi_4102"
    fast.fakes.orders[order_id] = shop_order(
        order_id,
        total_minor=6000,
        financial_status="AUTHORIZED",
        shipping_address=ShippingAddress(
            name="Ada", address1="1 Way", city="London", zip="N1", country_code="GB"
        ),
    )
    key = f"{fast.tenant}:{order_id}"
    authorised = payment_intent(pi, "requires_capture", order_key=key)
    captured = payment_intent(pi, "succeeded", order_key=key)
    fast.fakes.intents[pi] = [
        authorised.model_copy(update={"amount_capturable_minor": 6000}),  # void: no approval
        captured.model_copy(update={"amount_received_minor": 6000}),  # refund: finance asked
    ]
    fast.fakes.risk = "high"  # OrderFulfill waits for its capture approval meanwhile
    fulfil = await start_order(
        fast.client, fast.config, order_id=order_id, task_queue=fast.task_queue, timing=TIMING
    )
    await fast.fakes.opened_request(0)

    handle = await _cancel(fast, order_id)
    refund = await fast.fakes.opened_request(1)  # asked after OrderFulfill stopped
    assert refund.action == "refund_payment" and refund.workflow_id == handle.id
    assert (await fulfil.result()).state == "cancelled"

    await _cancelled(handle)
    assert [(c.request_id, c.decided_by) for c in fast.fakes.closed][-1] == (
        refund.request_id,
        FLOW_CANCELLED,
    )
    # Read twice (the fulfilment was running), no money moved, ops told.
    assert fast.fakes.names() == [GET, RISK, GET, PF_GET, READ, PF_GET, READ, EMAIL]
    (alert,) = fast.fakes.inputs(EMAIL)
    assert alert.template == "ops_alert" and alert.to == "ops@autobiz.test"
    assert "fulfilment stopped" in alert.variables["detail"]
    assert "cancellation of the workflow" in alert.variables["detail"]
    status = await flow_status(fast.client, handle.id)
    assert status.state == "abandoned" and status.detail["compensated"] == ["alert_ops"]
    assert status.detail["cancelled_in"] == "awaiting_approval"
    # OrderFulfill's last write, then the cancellation's own (it owns the row now).
    assert fast.fakes.states[order_id][-3:] == ["cancelled", "awaiting_approval", "abandoned"]
