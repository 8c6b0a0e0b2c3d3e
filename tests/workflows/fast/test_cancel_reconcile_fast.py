"""OrderCancellation and Reconciliation branches with stand-in activities (``fakes``)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from kernel.tools.printful import GetPrintfulOrderOutput
from starters.flows import flow_status, request_cancellation
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, shop_order
from tests.workflows.support import eventually
from workflows.common.models import FlowStatus
from workflows.ids import RECONCILIATION, exception_workflow_id, printful_external_id
from workflows.reconciliation.models import (
    OrderView,
    ReconcileScope,
    ReconciliationInput,
    ReconciliationResult,
)

GET, EMAIL = "shopify.get_order@1", "sendgrid.send_email@1"
PF_GET, PF_CANCEL = "printful.get_order@1", "printful.cancel_order@1"
READ, VOID = "stripe.get_payment_intent@1", "stripe.cancel_payment@1"
REFUND, CANCEL = "stripe.create_refund@1", "shopify.cancel_order@1"


def _setup(fast: Fast, order_id: str, status: str, *, printful: str | None = None) -> str:
    pi = f"pi_{order_id}"
    fast.fakes.orders[order_id] = shop_order(
        order_id, total_minor=2500, financial_status="AUTHORIZED"
    )
    fast.fakes.intents[pi] = [payment_intent(pi, status, order_key=f"{fast.tenant}:{order_id}")]
    if printful is not None:
        external = printful_external_id(fast.tenant, order_id)
        fast.fakes.printful[external] = GetPrintfulOrderOutput(
            printful_order_id=77, external_id=external, status=printful
        )
    return order_id


async def _cancel(fast: Fast, order_id: str):
    return await request_cancellation(
        fast.client, fast.config, order_id=order_id, task_queue=fast.task_queue, timing=TIMING
    )


async def test_cancellation_voids_an_authorisation(fast: Fast) -> None:
    order_id = _setup(fast, "4001", "requires_capture", printful="draft")
    result = await (await _cancel(fast, order_id)).result()
    assert result.state == "cancelled" and result.payment_action == "void"
    assert fast.fakes.names() == [GET, PF_GET, READ, PF_CANCEL, VOID, CANCEL, EMAIL]
    (void,) = fast.fakes.inputs(VOID)
    assert void.amount_minor == 2500 and void.reason == "requested_by_customer"
    assert REFUND not in fast.fakes.names()


async def test_cancellation_refunds_a_capture(fast: Fast) -> None:
    order_id = _setup(fast, "4002", "succeeded")  # no Printful order yet
    result = await (await _cancel(fast, order_id)).result()
    assert result.state == "cancelled" and result.payment_action == "refund"
    assert fast.fakes.names() == [GET, PF_GET, READ, REFUND, CANCEL, EMAIL]
    (refund,) = fast.fakes.inputs(REFUND)
    assert refund.amount_minor == 2500 and refund.refund_request_id == f"cancel-{order_id}"


async def test_cancellation_in_production_goes_to_people(fast: Fast) -> None:
    """The order goes to a FulfillmentException child and the cancellation waits on its
    escalation; cancelled from the Temporal side meanwhile, the child is cancelled with it
    (REQUEST_CANCEL): its request is withdrawn and nothing was cancelled or paid back."""
    order_id = _setup(fast, "4003", "succeeded", printful="inprocess")
    handle = await _cancel(fast, order_id)
    request = await fast.fakes.opened_request()
    child_id = exception_workflow_id(fast.tenant, order_id, "cancel-requested")
    assert request.workflow_id == child_id and request.action == "fulfillment_exception"
    status = await eventually(
        lambda: _shown(fast, handle.id, request.request_id), what="the escalation shown"
    )
    assert status.state == "exception" and status.detail["exception_workflow_id"] == child_id
    assert fast.fakes.names() == [GET, PF_GET, READ, GET, PF_GET]  # reads only, no ops email
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert (await flow_status(fast.client, handle.id)).state == "abandoned"
    child = fast.client.get_workflow_handle(child_id)
    with pytest.raises(WorkflowFailureError) as failed:
        await child.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert [c.request_id for c in fast.fakes.closed] == [request.request_id]
    assert not {VOID, REFUND, CANCEL, PF_CANCEL} & set(fast.fakes.names())


async def _shown(fast: Fast, workflow_id: str, request_id: str) -> FlowStatus | None:
    status = await flow_status(fast.client, workflow_id)
    return status if status.detail.get("exception_request_id") == request_id else None


async def test_reconciliation_repairs_a_printful_cancelled_outside(fast: Fast) -> None:
    external = printful_external_id(fast.tenant, "5001")
    fast.fakes.printful[external] = GetPrintfulOrderOutput(
        printful_order_id=88, external_id=external, status="canceled"
    )
    fast.fakes.scope = ReconcileScope(
        orders=(OrderView(order_id="5001", state="in_production", version=0, printful_order_id=88),)
    )
    result: ReconciliationResult = await fast.client.execute_workflow(
        RECONCILIATION.type,
        ReconciliationInput(tenant_id=fast.tenant),
        id=f"reconcile:{fast.tenant}:{uuid.uuid4().hex}",
        task_queue=fast.task_queue,
        result_type=ReconciliationResult,
    )
    (row,) = result.drifts
    assert row.kind == "printful_cancelled_outside" and row.status == "repaired"
    assert fast.fakes.states["5001"] == ["exception"]
    assert fast.fakes.names() == ["stripe.list_refunds@1", PF_GET, EMAIL]
    assert result.repairs == {}  # non-financial: no approval workflow
