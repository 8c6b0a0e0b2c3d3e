"""Refund and PaymentFailure cancelled from the Temporal side (`temporal workflow cancel`),
with stand-in activities (``fakes``): a pending approval is withdrawn and its row closed,
the run ends CANCELED (a Refund in state ``cancelled``, a PaymentFailure ``abandoned``:
its ``cancelled`` says the order was), and nothing further is done."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from starters.flows import flow_status, request_refund, start_payment_failure
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, shop_order
from tests.workflows.support import eventually
from workflows.common.approvals import FLOW_CANCELLED

GET, EMAIL = "shopify.get_order@1", "sendgrid.send_email@1"
READ = "stripe.get_payment_intent@1"


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool | None:
    """The run is in its approval wait (the request's row is open)."""
    attrs = (await handle.describe()).typed_search_attributes
    return True if [p.value for p in attrs if p.key.name == "ApprovalPending"] == [True] else None


async def _cancelled(handle: WorkflowHandle[Any, Any]) -> None:
    """Cancel the run as an operator would and see it end CANCELED."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_refund_cancelled_while_waiting_for_finance_moves_no_money(fast: Fast) -> None:
    order_id = "2101"
    fast.fakes.orders[order_id] = shop_order(order_id, total_minor=10000, financial_status="PAID")
    handle = await request_refund(
        fast.client,
        fast.config,
        order_id=order_id,
        payment_intent_id=f"pi_{order_id}",
        amount_minor=6000,  # 60.00: finance approves first
        currency="USD",
        task_queue=fast.task_queue,
        timing=TIMING,
    )
    request = await fast.fakes.opened_request()
    assert request.action == "refund"
    await eventually(lambda: _waiting(handle), what="the approval wait")

    await _cancelled(handle)
    [closed] = fast.fakes.closed
    assert closed.request_id == request.request_id
    assert (closed.status, closed.decided_by) == ("denied", FLOW_CANCELLED)
    assert fast.fakes.names() == [GET]  # no Stripe refund, no Shopify refund, no email
    status = await flow_status(fast.client, handle.id)
    assert status.state == "cancelled" and status.error is None
    assert status.approval is not None and status.approval.decided_by == FLOW_CANCELLED


async def _payment_failure(
    fast: Fast, order_id: str, amount_minor: int, decline: str
) -> WorkflowHandle[Any, Any]:
    """A payment of ``amount_minor`` for order ``order_id`` declined with ``decline``
    (dunning, when soft: one wait of an hour)."""
    pi = f"pi_{order_id}"
    fast.fakes.orders[order_id] = shop_order(
        order_id, total_minor=amount_minor, financial_status="PENDING"
    )
    unpaid = payment_intent(pi, "requires_payment_method", decline=decline)
    fast.fakes.intents[pi] = [unpaid.model_copy(update={"amount_minor": amount_minor})]
    return await start_payment_failure(
        fast.client,
        fast.config,
        payment_intent_id=pi,
        order_id=order_id,
        task_queue=fast.task_queue,
        dunning=[timedelta(hours=1)],
        timing=TIMING,
    )


async def test_payment_failure_cancelled_while_dunning_cancels_nothing(fast: Fast) -> None:
    order_id = "3101"
    handle = await _payment_failure(fast, order_id, 2500, "insufficient_funds")
    await fast.fakes.called(EMAIL)  # the "pay again" notice: now it waits an hour

    await _cancelled(handle)
    assert fast.fakes.names() == [READ, GET, EMAIL]  # nothing voided or cancelled
    status = await flow_status(fast.client, handle.id)
    assert status.state == "abandoned" and status.error is None
    assert fast.fakes.states[order_id] == ["classified", "dunning", "abandoned"]


async def test_payment_failure_cancelled_while_the_void_waits_closes_the_request(
    fast: Fast,
) -> None:
    order_id = "3102"
    # A hard decline: no dunning; voiding 250.00 needs finance.
    handle = await _payment_failure(fast, order_id, 25000, "stolen_card")
    request = await fast.fakes.opened_request()
    assert request.action == "void_payment" and request.amount_minor == 25000
    await eventually(lambda: _waiting(handle), what="the approval wait")

    await _cancelled(handle)
    [closed] = fast.fakes.closed
    assert closed.request_id == request.request_id
    assert (closed.status, closed.decided_by) == ("denied", FLOW_CANCELLED)
    assert fast.fakes.names() == [READ, GET]  # no void, no Shopify cancel, no email
    status = await flow_status(fast.client, handle.id)
    assert status.state == "abandoned"
    assert fast.fakes.states[order_id][-2:] == ["awaiting_approval", "abandoned"]
