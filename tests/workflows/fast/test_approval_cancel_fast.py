"""A flow cancelled from the Temporal side while its approval request's row is still
being written: the request is withdrawn and its row closed all the same (the row is
written again first, so the close finds it), and nothing moves."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from starters.flows import request_refund
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import shop_order
from workflows.common.approvals import FLOW_CANCELLED
from workflows.common.models import HITL_OPEN

GET = "shopify.get_order@1"


async def test_cancel_while_the_request_opens_closes_its_row(fast: Fast) -> None:
    fast.fakes.hold_first_open = asyncio.Event()
    fast.fakes.orders["2301"] = shop_order("2301", total_minor=10000, financial_status="PAID")
    handle = await request_refund(
        fast.client,
        fast.config,
        order_id="2301",
        payment_intent_id="pi_2301",
        amount_minor=9000,  # above the refund approval threshold
        currency="USD",
        task_queue=fast.task_queue,
        timing=TIMING,
    )
    await fast.fakes.called(HITL_OPEN)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    fast.fakes.hold_first_open.set()

    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert fast.fakes.names(tools_only=False).count(HITL_OPEN) == 2  # written again
    [opened], [closed] = fast.fakes.opened, fast.fakes.closed
    assert closed.request_id == opened.request_id
    assert (closed.status, closed.decided_by) == ("denied", FLOW_CANCELLED)
    assert fast.fakes.names() == [GET]  # no refund was made
