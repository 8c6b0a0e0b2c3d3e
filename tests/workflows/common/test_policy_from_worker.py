"""Whoever can start a workflow cannot choose its policy: the flow runs under the
worker's compiled BusinessConfig, whatever context the start carried. (Found while
building approval proofs: a start with a context whose HITL rules were dropped captured
600.00 with no approval.)"""

from __future__ import annotations

import pytest
from temporalio.client import Client

from activities.config_activities import flow_context
from tests.workflows.support import FAST, SHIP_TO, Harness
from workflows.common.models import FlowContext
from workflows.ids import order_workflow_id
from workflows.orders.models import OrderFulfillInput

pytestmark = pytest.mark.integration


async def _start_raw(
    h: Harness, client: Client, order_id: str, pi: str, context: FlowContext
) -> str:
    """A start as the plain Temporal API allows it: any input, any context."""
    workflow_id = order_workflow_id(h.tenant, order_id)
    await client.start_workflow(
        "OrderFulfill",
        OrderFulfillInput(
            tenant_id=h.tenant,
            order_id=order_id,
            payment_intent=pi,
            ship_to=SHIP_TO,
            context=context,
            principal="attacker",
        ),
        id=workflow_id,
        task_queue=h.task_queue,
    )
    return workflow_id


async def test_a_context_without_approval_rules_still_waits_for_approval(harness: Harness) -> None:
    h = harness
    order_id, pi = await h.authorized_order("600.00")
    lax = flow_context(h.config, "order_fulfill")
    lax = lax.model_copy(
        update={"policy": lax.policy.model_copy(update={"hitl": ()}), "timing": FAST.model_copy()}
    )
    workflow_id = await _start_raw(h, h.client, order_id, pi, lax)
    status = await h.status_when(workflow_id, lambda s: s.approval is not None)
    assert status.state == "awaiting_approval"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    # The worker's rule, with its roles, decided; the start's (none) did not.
    assert status.approval is not None
    assert set(status.approval.roles) == {"fraud_reviewer", "finance"}
    await h.client.get_workflow_handle(workflow_id).terminate("test over")
