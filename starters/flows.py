"""Start each flow by its business key, and send approvals (the CLI calls these).

A second start for the same key attaches to the running workflow (id-conflict policy
USE_EXISTING) and a key whose workflow has closed is never started again
(REJECT_DUPLICATE): a duplicate trigger can never make a second run.
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from activities.config_activities import flow_context
from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
from kernel.catalog import PrintfulRecipient
from kernel.config import BusinessConfig
from workflows.models import (
    ORDER_FULFILL,
    REFUND,
    ApprovalTiming,
    Decision,
    DecisionResult,
    FlowStatus,
    OrderFulfillInput,
    OrderFulfillResult,
    RefundInput,
    RefundResult,
    order_workflow_id,
    refund_workflow_id,
)


def _attributes(tenant_id: str, order_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ID, tenant_id),
            SearchAttributePair(ORDER_ID, order_id),
            SearchAttributePair(FLOW_STATE, "received"),
            SearchAttributePair(APPROVAL_PENDING, False),
        ]
    )


async def start_order(
    client: Client,
    config: BusinessConfig,
    *,
    order_id: str,
    task_queue: str,
    payment_intent: str | None = None,
    ship_to: PrintfulRecipient | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
    **options: Any,
) -> WorkflowHandle[Any, OrderFulfillResult]:
    context = flow_context(config, "order_fulfill")
    if timing is not None:
        context = context.model_copy(update={"timing": timing})
    input = OrderFulfillInput(
        tenant_id=config.tenant, order_id=order_id, payment_intent=payment_intent,
        ship_to=ship_to, context=context, principal=principal, **options,
    )  # fmt: skip
    return await client.start_workflow(
        ORDER_FULFILL,
        input,
        id=order_workflow_id(config.tenant, order_id),
        task_queue=task_queue,
        result_type=OrderFulfillResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=_attributes(config.tenant, order_id),
    )


async def request_refund(
    client: Client,
    config: BusinessConfig,
    *,
    order_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str,
    task_queue: str,
    refund_request_id: str | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
    note: str | None = None,
) -> WorkflowHandle[Any, RefundResult]:
    context = flow_context(config, "refund")
    if timing is not None:
        context = context.model_copy(update={"timing": timing})
    request_id = refund_request_id or f"rr-{uuid.uuid4().hex[:16]}"
    input = RefundInput(
        tenant_id=config.tenant, refund_request_id=request_id, order_id=order_id,
        payment_intent_id=payment_intent_id, amount_minor=amount_minor, currency=currency,
        context=context, principal=principal, note=note,
    )  # fmt: skip
    return await client.start_workflow(
        REFUND,
        input,
        id=refund_workflow_id(config.tenant, request_id),
        task_queue=task_queue,
        result_type=RefundResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=_attributes(config.tenant, order_id),
    )


async def decide(
    client: Client,
    workflow_id: str,
    decision: Decision,
    *,
    update_id: str | None = None,
) -> DecisionResult:
    """Send a decision as the ``decide`` update; a rejected one raises
    ``WorkflowUpdateFailedError`` and leaves no trace in the workflow's history."""
    handle = client.get_workflow_handle(workflow_id)
    result: DecisionResult = await handle.execute_update(
        "decide", decision, id=update_id, result_type=DecisionResult
    )
    return result


async def flow_status(client: Client, workflow_id: str) -> FlowStatus:
    handle = client.get_workflow_handle(workflow_id)
    status: FlowStatus = await handle.query("status", result_type=FlowStatus)
    return status
