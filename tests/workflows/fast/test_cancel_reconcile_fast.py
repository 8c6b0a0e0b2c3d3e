"""OrderCancellation and Reconciliation branches with stand-in activities (``fakes``)."""

from __future__ import annotations

import uuid

from kernel.tools.printful import GetPrintfulOrderOutput
from starters.flows import request_cancellation
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, shop_order
from workflows.ids import RECONCILIATION, printful_external_id
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
    order_id = _setup(fast, "4003", "succeeded", printful="inprocess")
    result = await (await _cancel(fast, order_id)).result()
    assert result.state == "exception"
    assert result.exception is not None and result.exception.kind == "printful_in_production"
    assert fast.fakes.names() == [GET, PF_GET, READ, EMAIL]  # ops told, nothing cancelled
    (alert,) = fast.fakes.inputs(EMAIL)
    assert alert.to == "ops@autobiz.test"


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
